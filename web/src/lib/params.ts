// The Generate form's state: what the user typed, kept in localStorage so a reload (or an error) loses nothing,
// and turned into the API's GenerateRequest only at submit time.
import type { GenerateRequest, JobResult, ModelInfo } from "@/api/client";

export type SeedMode = "random" | "fixed" | "last";

export interface FormParams {
  prompt: string;
  negative_prompt: string;
  model: string;
  sampler: string;
  width: number;
  height: number;
  steps: number;
  cfg_scale: number;
  seedMode: SeedMode;
  seed: number;
  batch_size: number;
  priority: number;
}

export const DEFAULT_PARAMS: FormParams = {
  prompt: "",
  negative_prompt: "",
  model: "",
  sampler: "euler_a",
  width: 512,
  height: 512,
  steps: 20,
  cfg_scale: 7.5,
  seedMode: "random",
  seed: 0,
  batch_size: 1,
  priority: 0,
};

/** Older or partial saved values are completed from the defaults, field by field. */
export function restoreParams(saved: Partial<FormParams> | null): FormParams {
  return { ...DEFAULT_PARAMS, ...(saved ?? {}) };
}

export function toRequest(params: FormParams, lastSeed: number | null): GenerateRequest {
  let seed = -1;
  if (params.seedMode === "fixed") seed = params.seed;
  if (params.seedMode === "last" && lastSeed !== null) seed = lastSeed;
  return {
    prompt: params.prompt,
    negative_prompt: params.negative_prompt,
    model: params.model || null,
    sampler: params.sampler,
    width: params.width,
    height: params.height,
    steps: params.steps,
    cfg_scale: params.cfg_scale,
    seed,
    batch_size: params.batch_size,
    priority: params.priority,
    // The studio shows the live preview from the first step, even before its event stream is open.
    previews: true,
  };
}

/** "Reuse settings": the job's parameters back in the form; its seed kept fixed when `withSeed`. */
export function fromRequest(current: FormParams, request: GenerateRequest, seed: number | null): FormParams {
  return {
    ...current,
    prompt: request.prompt,
    negative_prompt: request.negative_prompt ?? "",
    model: request.model ?? current.model,
    sampler: request.sampler ?? current.sampler,
    width: request.width ?? current.width,
    height: request.height ?? current.height,
    steps: request.steps ?? current.steps,
    cfg_scale: request.cfg_scale ?? current.cfg_scale,
    batch_size: request.batch_size ?? current.batch_size,
    priority: request.priority ?? current.priority,
    ...(seed === null ? { seedMode: "random" as const } : { seedMode: "fixed" as const, seed }),
  };
}

export function resultSeed(result: JobResult): number {
  return result.seed;
}

export interface SizePreset {
  label: string;
  width: number;
  height: number;
}

// Common sizes each family was trained around: square, portrait and landscape at about the native pixel count.
const FAMILY_PRESETS: Record<ModelInfo["family"], SizePreset[]> = {
  sd15: [
    { label: "Square 512×512", width: 512, height: 512 },
    { label: "Portrait 512×768", width: 512, height: 768 },
    { label: "Landscape 768×512", width: 768, height: 512 },
    { label: "Square 768×768", width: 768, height: 768 },
  ],
  sdxl: [
    { label: "Square 1024×1024", width: 1024, height: 1024 },
    { label: "Portrait 832×1216", width: 832, height: 1216 },
    { label: "Landscape 1216×832", width: 1216, height: 832 },
    { label: "Portrait 896×1152", width: 896, height: 1152 },
    { label: "Landscape 1152×896", width: 1152, height: 896 },
  ],
};

/** Presets for a model: its family's sizes, led by the model's own native size when that is not among them. */
export function sizePresets(model: ModelInfo | undefined): SizePreset[] {
  const family = FAMILY_PRESETS[model?.family ?? "sd15"];
  const native = model?.default_size;
  if (native && !family.some((p) => p.width === native && p.height === native)) {
    return [{ label: `Native ${native}×${native}`, width: native, height: native }, ...family];
  }
  return family;
}
