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
  /** Fields of the tab's own (hires fix, image settings), placed before the Generate button. */
  extra?: ReactNode;
}

/** What a control needs to be tied to its field's hint and error (spread onto the input). */
export interface FieldA11y {
  "aria-describedby"?: string;
  "aria-invalid"?: true;
}

/**
 * A labelled field. The control comes from `children(a11y)`, so every hint and error this field shows is in
 * the control's aria-describedby: none can be left unlinked.
 */
export function Field(props: { id: string; label: string; error?: string; hint?: string; children: (a11y: FieldA11y) => ReactNode }) {
  const { id, label, error, hint, children } = props;
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  const a11y: FieldA11y = { ...(described ? { "aria-describedby": described } : {}), ...(error ? { "aria-invalid": true } : {}) };
  return (
    <div className={`field${error ? " field-invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children(a11y)}
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

/** The request fields the form shows, in page order, by the label a person sees. */
export const FIELD_LABEL: Partial<Record<keyof FieldErrors, string>> = {
  prompt: "Prompt",
  negative_prompt: "Negative prompt",
  model: "Model",
  sampler: "Sampler",
  width: "Width",
  height: "Height",
  steps: "Steps",
  cfg_scale: "CFG scale",
  seed: "Seed",
  batch_size: "Batch size",
  priority: "Priority",
  hires: "Hires fix",
  hires_scale: "Upscale by",
  hires_upscaler: "Upscaler",
  hires_steps: "Hires steps",
  hires_denoising: "Hires denoising strength",
  denoising_strength: "Denoising strength",
  resize_mode: "Resize mode",
  inpainting_fill: "Masked content",
  mask_blur: "Mask blur",
  inpaint_padding: "Only-masked padding",
  outpaint_left: "Outpaint left",
  outpaint_right: "Outpaint right",
  outpaint_top: "Outpaint top",
  outpaint_bottom: "Outpaint bottom",
  init_image: "Image",
  mask: "Mask",
  vae: "VAE",
  clip_skip: "Clip skip",
  controlnets: "ControlNet",
  loras: "LoRAs",
};
const FIELD_ORDER = Object.keys(FIELD_LABEL) as (keyof FieldErrors)[];

/** The id of the control that takes focus after a failed submit: the first field in error, in page order. */
export function firstInvalidControl(errors: FieldErrors, seedMode: SeedMode): string | null {
  const field = FIELD_ORDER.find((f) => errors[f]);
  if (field === undefined) return null;
  return field === "seed" && seedMode !== "fixed" ? "seed-mode" : field;
}

/** The Generate form. Pure: values, errors and lists come in as props; every edit goes out through onChange. */
export function GenerateForm(props: GenerateFormProps) {
  const { params, onChange, onSubmit, models, defaultModel, samplers, errors, submitting, lastSeed, extra } = props;
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
    const input = (a11y: FieldA11y) => (
      <input
        id={key}
        type="number"
        inputMode={key === "cfg_scale" ? "decimal" : "numeric"}
        min={r.minimum}
        max={r.maximum}
        step={step ?? r.multipleOf ?? 1}
        value={Number.isFinite(params[key]) ? params[key] : ""}
        onChange={num(key)}
        {...a11y}
      />
    );
    return input;
  };

  return (
    <form className="generate-form" onSubmit={submit} noValidate aria-label="Generate">
      <Field id="prompt" label="Prompt" error={errors.prompt} hint="Ctrl+Enter (⌘+Enter) to generate">
        {(a11y) => (
          <textarea
            id="prompt"
            rows={4}
            value={params.prompt}
            onChange={(e) => set("prompt", e.target.value)}
            onKeyDown={submitOnCtrlEnter}
            placeholder="a lighthouse on a cliff at dusk, oil painting"
            {...a11y}
          />
        )}
      </Field>
      <Field id="negative_prompt" label="Negative prompt" error={errors.negative_prompt}>
        {(a11y) => (
          <textarea
            id="negative_prompt"
            rows={2}
            value={params.negative_prompt}
            onChange={(e) => set("negative_prompt", e.target.value)}
            onKeyDown={submitOnCtrlEnter}
            {...a11y}
          />
        )}
      </Field>

      <div className="row">
        <Field id="model" label="Model" error={errors.model}>
          {(a11y) => (
            <select id="model" value={params.model} onChange={(e) => set("model", e.target.value)} {...a11y}>
              <option value="">{defaultModel ? `${defaultModel} (default)` : "Server default"}</option>
              {(models ?? []).map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name} · {m.family === "sdxl" ? "SDXL" : "SD 1.5"}
                  {m.demo ? " · demo (noise)" : ""}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id="sampler" label="Sampler" error={errors.sampler}>
          {(a11y) =>
            samplers ? (
              <select id="sampler" value={params.sampler} onChange={(e) => set("sampler", e.target.value)} {...a11y}>
                {samplers.some((s) => s.id === params.sampler) ? null : <option value={params.sampler}>{params.sampler}</option>}
                {samplers.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name}
                  </option>
                ))}
              </select>
            ) : (
              <input id="sampler" value={params.sampler} onChange={(e) => set("sampler", e.target.value)} {...a11y} />
            )
          }
        </Field>
      </div>
      {selectedModel?.demo ? (
        <p className="notice" role="note">
          {selectedModel.name} is a tiny random-weight demo model: its images are noise.
        </p>
      ) : null}

      <Field id="size-preset" label="Size">
        {(a11y) => (
          <select
            id="size-preset"
            value={presetValue}
            onChange={(e) => {
              const preset = presets.find((p) => p.label === e.target.value);
              if (preset) onChange({ ...params, width: preset.width, height: preset.height });
            }}
            {...a11y}
          >
            {presets.map((p) => (
              <option key={p.label} value={p.label}>
                {p.label}
              </option>
            ))}
            <option value="custom">Custom</option>
          </select>
        )}
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
        {/* Without a seed value to type (random, reuse last), a seed error belongs to the mode. */}
        <Field id="seed-mode" label="Seed" error={params.seedMode === "fixed" ? undefined : errors.seed}>
          {(a11y) => (
            <select id="seed-mode" value={params.seedMode} onChange={(e) => set("seedMode", e.target.value as SeedMode)} {...a11y}>
              <option value="random">Random</option>
              <option value="fixed">Fixed</option>
              <option value="last" disabled={lastSeed === null}>
                Reuse last{lastSeed !== null ? ` (${lastSeed})` : ""}
              </option>
            </select>
          )}
        </Field>
        {params.seedMode === "fixed" ? (
          <Field id="seed" label="Seed value" error={errors.seed}>
            {numberInput("seed")}
          </Field>
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
      {extra}
      <button type="submit" className="primary" disabled={submitting}>
        {submitting ? "Submitting…" : "Generate"}
      </button>
    </form>
  );
}
