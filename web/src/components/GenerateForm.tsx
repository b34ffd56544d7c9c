"use client";
import { type ChangeEvent, type FormEvent, type KeyboardEvent, type ReactNode } from "react";

import type { ModelInfo, SamplerInfo } from "@/api/client";
import type { FormParams, SeedMode } from "@/lib/params";
import { sizePresets } from "@/lib/params";
import { rule, type FieldErrors } from "@/lib/rules";

export interface GenerateFormProps {
  params: FormParams;
  onChange: (params: FormParams) => void;
  onSubmit: () => void;
  models: ModelInfo[] | null;
  defaultModel: string | null;
  samplers: SamplerInfo[] | null;
  errors: FieldErrors;
  submitting: boolean;
  lastSeed: number | null;
}

function Field({ id, label, error, hint, children }: { id: string; label: string; error?: string; hint?: string; children: ReactNode }) {
  return (
    <div className={`field${error ? " field-invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children}
      {hint ? (
        <p className="hint" id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className="field-error" id={`${id}-error`} data-testid={`error-${id}`}>
          {label}: {error}
        </p>
      ) : null}
    </div>
  );
}

function describedBy(id: string, error: string | undefined, hint?: boolean): string | undefined {
  const ids = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return ids || undefined;
}

/** The Generate form. Pure: values, errors and lists come in as props; every edit goes out through onChange. */
export function GenerateForm(props: GenerateFormProps) {
  const { params, onChange, onSubmit, models, defaultModel, samplers, errors, submitting, lastSeed } = props;
  const set = <K extends keyof FormParams>(key: K, value: FormParams[K]) => onChange({ ...params, [key]: value });
  const num = (key: keyof FormParams) => (e: ChangeEvent<HTMLInputElement>) => set(key, e.target.valueAsNumber as never);

  const selectedModel = models?.find((m) => m.id === (params.model || defaultModel));
  const presets = sizePresets(selectedModel);
  const presetValue = presets.find((p) => p.width === params.width && p.height === params.height)?.label ?? "custom";

  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSubmit();
  };
  // Ctrl+Enter / Cmd+Enter submits from the prompt boxes, where plain Enter makes a new line.
  const submitOnCtrlEnter = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.currentTarget.form?.requestSubmit();
    }
  };
  const numberInput = (key: "width" | "height" | "steps" | "cfg_scale" | "batch_size" | "priority" | "seed", step?: number) => {
    const r = rule(key);
    return (
      <input
        id={key}
        type="number"
        inputMode={key === "cfg_scale" ? "decimal" : "numeric"}
        min={r.minimum}
        max={r.maximum}
        step={step ?? r.multipleOf ?? 1}
        value={Number.isFinite(params[key]) ? params[key] : ""}
        onChange={num(key)}
        aria-invalid={errors[key] ? true : undefined}
        aria-describedby={describedBy(key, errors[key])}
      />
    );
  };

  return (
    <form className="generate-form" onSubmit={submit} noValidate aria-label="Generate">
      <Field id="prompt" label="Prompt" error={errors.prompt} hint="Ctrl+Enter (⌘+Enter) to generate">
        <textarea
          id="prompt"
          rows={4}
          value={params.prompt}
          onChange={(e) => set("prompt", e.target.value)}
          onKeyDown={submitOnCtrlEnter}
          aria-invalid={errors.prompt ? true : undefined}
          aria-describedby={describedBy("prompt", errors.prompt, true)}
          placeholder="a lighthouse on a cliff at dusk, oil painting"
        />
      </Field>
      <Field id="negative_prompt" label="Negative prompt" error={errors.negative_prompt}>
        <textarea
          id="negative_prompt"
          rows={2}
          value={params.negative_prompt}
          onChange={(e) => set("negative_prompt", e.target.value)}
          onKeyDown={submitOnCtrlEnter}
          aria-invalid={errors.negative_prompt ? true : undefined}
          aria-describedby={describedBy("negative_prompt", errors.negative_prompt)}
        />
      </Field>

      <div className="row">
        <Field id="model" label="Model" error={errors.model}>
          <select
            id="model"
            value={params.model}
            onChange={(e) => set("model", e.target.value)}
            aria-invalid={errors.model ? true : undefined}
            aria-describedby={describedBy("model", errors.model)}
          >
            <option value="">{defaultModel ? `${defaultModel} (default)` : "Server default"}</option>
            {(models ?? []).map((m) => (
              <option key={m.id} value={m.id}>
                {m.name} · {m.family === "sdxl" ? "SDXL" : "SD 1.5"}
                {m.demo ? " · demo (noise)" : ""}
              </option>
            ))}
          </select>
        </Field>
        <Field id="sampler" label="Sampler" error={errors.sampler}>
          {samplers ? (
            <select
              id="sampler"
              value={params.sampler}
              onChange={(e) => set("sampler", e.target.value)}
              aria-invalid={errors.sampler ? true : undefined}
              aria-describedby={describedBy("sampler", errors.sampler)}
            >
              {samplers.some((s) => s.id === params.sampler) ? null : <option value={params.sampler}>{params.sampler}</option>}
              {samplers.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name}
                </option>
              ))}
            </select>
          ) : (
            <input
              id="sampler"
              value={params.sampler}
              onChange={(e) => set("sampler", e.target.value)}
              aria-invalid={errors.sampler ? true : undefined}
              aria-describedby={describedBy("sampler", errors.sampler)}
            />
          )}
        </Field>
      </div>
      {selectedModel?.demo ? (
        <p className="notice" role="note">
          {selectedModel.name} is a tiny random-weight demo model: its images are noise.
        </p>
      ) : null}

      <Field id="size-preset" label="Size">
        <select
          id="size-preset"
          value={presetValue}
          onChange={(e) => {
            const preset = presets.find((p) => p.label === e.target.value);
            if (preset) onChange({ ...params, width: preset.width, height: preset.height });
          }}
        >
          {presets.map((p) => (
            <option key={p.label} value={p.label}>
              {p.label}
            </option>
          ))}
          <option value="custom">Custom</option>
        </select>
      </Field>
      <div className="row">
        <Field id="width" label="Width" error={errors.width}>
          {numberInput("width")}
        </Field>
        <Field id="height" label="Height" error={errors.height}>
          {numberInput("height")}
        </Field>
      </div>
      <div className="row">
        <Field id="steps" label="Steps" error={errors.steps}>
          {numberInput("steps")}
        </Field>
        <Field id="cfg_scale" label="CFG scale" error={errors.cfg_scale}>
          {numberInput("cfg_scale", 0.5)}
        </Field>
      </div>
      <div className="row">
        <Field id="seed-mode" label="Seed">
          <select id="seed-mode" value={params.seedMode} onChange={(e) => set("seedMode", e.target.value as SeedMode)}>
            <option value="random">Random</option>
            <option value="fixed">Fixed</option>
            <option value="last" disabled={lastSeed === null}>
              Reuse last{lastSeed !== null ? ` (${lastSeed})` : ""}
            </option>
          </select>
        </Field>
        {params.seedMode === "fixed" ? (
          <Field id="seed" label="Seed value" error={errors.seed}>
            {numberInput("seed")}
          </Field>
        ) : errors.seed ? (
          <p className="field-error" data-testid="error-seed">
            Seed: {errors.seed}
          </p>
        ) : null}
      </div>
      <div className="row">
        <Field id="batch_size" label="Batch size" error={errors.batch_size}>
          {numberInput("batch_size")}
        </Field>
        <Field id="priority" label="Priority" error={errors.priority} hint="Higher runs first">
          {numberInput("priority")}
        </Field>
      </div>
      <button type="submit" className="primary" disabled={submitting}>
        {submitting ? "Submitting…" : "Generate"}
      </button>
    </form>
  );
}
