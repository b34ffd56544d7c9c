"use client";
// The LoRA and embedding picker: the workers' files of the model's family, searchable; a LoRA goes into the
// prompt as `<lora:name:1>` at the cursor (A1111's syntax, which the gateway reads), an embedding as its name.
// The LoRAs already in the prompt get a weight slider each, which rewrites their tag.
import { useState } from "react";

import { useModelsOfKind } from "@/api/adapters";
import type { ModelInfo } from "@/api/client";
import { formatWeight, insertAt, loraTag, loraTags, removeTag, setTagWeight } from "@/lib/adapters";

import { ErrorNotice } from "./Notice";

type Family = "" | "sd15" | "sdxl";
const FAMILY_LABEL: Record<string, string> = { sd15: "SD 1.5", sdxl: "SDXL" };
// The studio's slider range; the API takes -4..4 (typed into the prompt).
const WEIGHT_MIN = -1;
const WEIGHT_MAX = 2;

export interface AdapterPickerProps {
  prompt: string;
  onPrompt: (prompt: string) => void;
  /** The family of the model the job runs with; the list shows that family's files first. */
  family: string | null;
  /** Id of the prompt textarea whose cursor takes the insertions. */
  promptId?: string;
}

function matches(model: ModelInfo, query: string, family: Family): boolean {
  if (family && model.family !== family) return false;
  return query === "" || model.id.toLowerCase().includes(query.toLowerCase());
}

export function AdapterPicker({ prompt, onPrompt, family, promptId = "prompt" }: AdapterPickerProps) {
  const loras = useModelsOfKind("lora");
  const embeddings = useModelsOfKind("embedding");
  const [query, setQuery] = useState("");
  // "" = every family; null until chosen = the model's own.
  const [chosenFamily, setChosenFamily] = useState<Family | null>(null);
  const shownFamily: Family = chosenFamily ?? ((family ?? "") as Family);

  const insert = (text: string) => {
    const box = document.getElementById(promptId) as HTMLTextAreaElement | null;
    const start = box?.selectionStart ?? prompt.length;
    const end = box?.selectionEnd ?? prompt.length;
    const next = insertAt(prompt, start, end, text);
    onPrompt(next.prompt);
    // After React has put the new text in the box: the cursor goes right after the insertion.
    requestAnimationFrame(() => {
      box?.focus();
      box?.setSelectionRange(next.cursor, next.cursor);
    });
  };

  const list = (items: ModelInfo[] | undefined, kind: "lora" | "embedding") => {
    const shown = (items ?? []).filter((m) => matches(m, query, shownFamily));
    if (!items) return null;
    if (shown.length === 0) return <p className="muted">{items.length === 0 ? `No ${kind === "lora" ? "LoRAs" : "embeddings"} on the workers.` : "None match."}</p>;
    return (
      <ul className="adapter-list">
        {shown.map((m) => (
          <li key={m.id}>
            <button type="button" onClick={() => insert(kind === "lora" ? loraTag(m.id) : m.id)} aria-label={`Add ${kind === "lora" ? "LoRA" : "embedding"} ${m.id}`}>
              {m.id}
            </button>
            <span className="muted">{FAMILY_LABEL[m.family] ?? m.family}</span>
          </li>
        ))}
      </ul>
    );
  };

  const inPrompt = loraTags(prompt);
  const names = [...new Set(inPrompt.map((t) => t.name))];
  return (
    <fieldset className="mode-fields adapter-picker">
      <legend>LoRAs and embeddings</legend>
      <div className="row">
        <div className="field">
          <label htmlFor="adapter-search">Search</label>
          <input id="adapter-search" type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="name" />
        </div>
        <div className="field">
          <label htmlFor="adapter-family">Family</label>
          <select id="adapter-family" value={shownFamily} onChange={(e) => setChosenFamily(e.target.value as Family)}>
            <option value="">All</option>
            <option value="sd15">SD 1.5</option>
            <option value="sdxl">SDXL</option>
          </select>
        </div>
      </div>
      <h3 className="subheading">LoRAs</h3>
      {list(loras.data, "lora")}
      <ErrorNotice error={loras.error} title="LoRAs" />
      <h3 className="subheading">Embeddings</h3>
      {list(embeddings.data, "embedding")}
      <ErrorNotice error={embeddings.error} title="Embeddings" />
      {names.length ? (
        <div className="lora-weights" aria-label="LoRA weights">
          {names.map((name) => {
            const weight = inPrompt.find((t) => t.name === name)?.weight ?? 1;
            const id = `lora-weight-${name}`;
            return (
              <div className="slider" key={name}>
                <label htmlFor={id}>{name}</label>
                <input
                  id={id}
                  type="range"
                  min={WEIGHT_MIN}
                  max={WEIGHT_MAX}
                  step={0.05}
                  value={Number.isFinite(weight) ? weight : 1}
                  onChange={(e) => onPrompt(setTagWeight(prompt, name, e.target.valueAsNumber))}
                />
                <output htmlFor={id}>{Number.isFinite(weight) ? formatWeight(weight) : "?"}</output>
                <button type="button" onClick={() => onPrompt(removeTag(prompt, name))} aria-label={`Remove LoRA ${name}`}>
                  ×
                </button>
              </div>
            );
          })}
        </div>
      ) : null}
    </fieldset>
  );
}
