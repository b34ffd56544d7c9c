"use client";
import { useState } from "react";

import type { FormParams } from "@/lib/params";
import { applySnippet, deleteStyle, loadStyles, saveStyle, type Style } from "@/lib/prompts";

/**
 * Above the prompt boxes: the last prompts submitted (pick one to put it back) and saved styles (prompt and
 * negative snippets applied on top of what is typed), as A1111 has them.
 */
export function PromptTools(props: { params: FormParams; onChange: (params: FormParams) => void; history: string[] }) {
  const { params, onChange, history } = props;
  const [styles, setStyles] = useState<Style[]>(loadStyles);
  const [styleName, setStyleName] = useState("");
  const [chosen, setChosen] = useState("");
  const style = styles.find((s) => s.name === chosen);

  const apply = () => {
    if (!style) return;
    onChange({
      ...params,
      prompt: applySnippet(params.prompt, style.prompt),
      negative_prompt: applySnippet(params.negative_prompt, style.negative_prompt),
    });
  };
  const save = () => {
    const name = styleName.trim();
    if (!name) return;
    setStyles(saveStyle(styles, { name, prompt: params.prompt, negative_prompt: params.negative_prompt }));
    setChosen(name);
    setStyleName("");
  };

  return (
    <div className="prompt-tools">
      <div className="field">
        <label htmlFor="recent-prompts">Recent prompts</label>
        <select
          id="recent-prompts"
          value=""
          disabled={history.length === 0}
          onChange={(e) => {
            if (e.target.value) onChange({ ...params, prompt: e.target.value });
          }}
        >
          <option value="">{history.length ? `Pick one of the last ${history.length}` : "None yet"}</option>
          {history.map((p) => (
            <option key={p} value={p}>
              {p.length > 90 ? `${p.slice(0, 90)}…` : p}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="style">Style</label>
        <div className="inline">
          <select id="style" value={chosen} onChange={(e) => setChosen(e.target.value)}>
            <option value="">{styles.length ? "Choose a style" : "No styles saved"}</option>
            {styles.map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
          </select>
          <button type="button" onClick={apply} disabled={!style}>
            Apply style
          </button>
          <button
            type="button"
            className="danger"
            disabled={!style}
            onClick={() => {
              setStyles(deleteStyle(styles, chosen));
              setChosen("");
            }}
          >
            Delete style
          </button>
        </div>
      </div>
      <details className="style-save">
        <summary>Save as a style</summary>
          <div className="field">
          <label htmlFor="style-name">Save prompt and negative as a style</label>
          <div className="inline">
            <input id="style-name" value={styleName} placeholder="Style name" maxLength={80} onChange={(e) => setStyleName(e.target.value)} />
            <button type="button" onClick={save} disabled={!styleName.trim() || !(params.prompt.trim() || params.negative_prompt.trim())}>
              Save style
            </button>
          </div>
        </div>
      </details>
    </div>
  );
}
