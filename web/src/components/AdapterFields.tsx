"use client";
// What both tabs add for adapters: the LoRA/embedding picker, VAE and clip skip, and ControlNet units. Values
// live in FormParams (LoRAs in the prompt), so they persist, reuse and validate like every other field.
import { useModelsOfKind } from "@/api/adapters";
import type { ModelInfo } from "@/api/client";
import { loraTags } from "@/lib/adapters";
import type { FormParams } from "@/lib/params";
import type { FieldErrors } from "@/lib/rules";

import { AdapterPicker } from "./AdapterPicker";
import { ControlNetUnits } from "./ControlNetUnits";
import { Field } from "./GenerateForm";
import { ErrorNotice } from "./Notice";

const CLIP_SKIPS = Array.from({ length: 12 }, (_, i) => i + 1);

export interface AdapterFieldsProps {
  params: FormParams;
  onChange: (params: FormParams) => void;
  errors: FieldErrors;
  models: ModelInfo[] | null;
  defaultModel: string | null;
}

export function AdapterFields({ params, onChange, errors, models, defaultModel }: AdapterFieldsProps) {
  const vaes = useModelsOfKind("vae");
  const model = models?.find((m) => m.id === (params.model || defaultModel));
  const family = model?.family ?? null;
  const set = <K extends keyof FormParams>(key: K, value: FormParams[K]) => onChange({ ...params, [key]: value });
  // Every VAE, the model family's first: a VAE's family is only a guess from its name (SD 1.5 and SDXL VAEs have
  // the same tensors), so one named without "xl" may well be an SDXL VAE. The gateway does not refuse either.
  const vaeList = [...(vaes.data ?? [])].sort((a, b) => Number(b.family === family) - Number(a.family === family));
  // Open while anything in it is set or in error, so a value that changes the image is never hidden.
  const active =
    params.vae !== "" || params.clip_skip > 1 || params.controlnets.length > 0 || loraTags(params.prompt).length > 0 ||
    Boolean(errors.vae || errors.clip_skip || errors.controlnets || errors.loras);
  return (
    <details className="adapter-fields" open={active || undefined}>
      <summary>LoRAs, embeddings, VAE, ControlNet</summary>
      <AdapterPicker prompt={params.prompt} onPrompt={(prompt) => set("prompt", prompt)} family={family} />
      <div className="row">
        <Field id="vae" label="VAE" error={errors.vae}>
          {(a11y) => (
            <select id="vae" value={params.vae} onChange={(e) => set("vae", e.target.value)} {...a11y}>
              <option value="">The checkpoint&apos;s own</option>
              {params.vae && !vaeList.some((v) => v.id === params.vae) ? <option value={params.vae}>{params.vae}</option> : null}
              {vaeList.map((v) => (
                <option key={v.id} value={v.id}>
                  {v.id}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id="clip_skip" label="Clip skip" error={errors.clip_skip} hint="1: the last layer">
          {(a11y) => (
            <select id="clip_skip" value={params.clip_skip} onChange={(e) => set("clip_skip", Number(e.target.value))} {...a11y}>
              {CLIP_SKIPS.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <ErrorNotice error={vaes.error} title="VAEs" />
      <ControlNetUnits units={params.controlnets} onUnits={(units) => set("controlnets", units)} family={family} error={errors.controlnets} />
    </details>
  );
}
