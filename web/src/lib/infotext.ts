// Parameters read from an image by the gateway (/api/v1/png-info: A1111 infotext keys, also for ComfyUI
// graphs) turned into the Generate form's values. Parsing stays in the gateway; this only maps keys.
import type { SamplerInfo } from "@/api/client";

import type { FormParams } from "./params";

const norm = (s: string) => s.trim().toLowerCase();

/**
 * The sampler id a name stands for: A1111 writes "DPM++ 2M" plus "Schedule type: Karras", ComfyUI
 * "dpmpp_2m" plus "karras"; both are tried with and without the schedule, against ids, names and aliases.
 */
export function matchSampler(samplers: SamplerInfo[], sampler: string | undefined, schedule: string | undefined): string | null {
  if (!sampler) return null;
  const candidates = schedule && norm(schedule) !== "automatic" ? [`${sampler} ${schedule}`, `${sampler}_${schedule}`, sampler] : [sampler];
  for (const candidate of candidates.map(norm)) {
    const found = samplers.find((s) => [s.id, s.name, ...(s.aliases ?? [])].some((n) => norm(n) === candidate));
    if (found) return found.id;
  }
  return null;
}

function int(value: string | undefined): number | null {
  if (value === undefined || !/^-?\d+$/.test(value.trim())) return null;
  return Number(value);
}

function float(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value.trim());
  return value.trim() !== "" && Number.isFinite(n) ? n : null;
}

export interface FilledForm {
  params: FormParams;
  /** Parameters the image had that the form could not take (an unknown sampler, say), for the user to see. */
  skipped: string[];
}

/** The form with every parameter the image carries; the rest of the form stays as it was. */
export function formFromParameters(current: FormParams, parameters: Record<string, string>, samplers: SamplerInfo[], modelIds: string[]): FilledForm {
  const next: FormParams = { ...current };
  const skipped: string[] = [];
  if ("Prompt" in parameters) next.prompt = parameters.Prompt ?? "";
  if ("Negative prompt" in parameters) next.negative_prompt = parameters["Negative prompt"] ?? "";
  const numbers: [keyof FormParams, string, (v: string | undefined) => number | null][] = [
    ["steps", "Steps", int],
    ["cfg_scale", "CFG scale", float],
    ["width", "Size-1", int],
    ["height", "Size-2", int],
  ];
  for (const [field, key, parse] of numbers) {
    if (!(key in parameters)) continue;
    const value = parse(parameters[key]);
    if (value === null) skipped.push(`${key}: ${parameters[key]}`);
    else (next as unknown as Record<string, unknown>)[field] = value;
  }
  const seed = int(parameters.Seed);
  if (seed !== null) {
    next.seedMode = "fixed";
    next.seed = seed;
  }
  if (parameters.Sampler) {
    const id = matchSampler(samplers, parameters.Sampler, parameters["Schedule type"]);
    if (id) next.sampler = id;
    else skipped.push(`Sampler: ${parameters.Sampler}`);
  }
  if (parameters.Model) {
    const model = modelIds.find((m) => norm(m) === norm(parameters.Model ?? ""));
    if (model) next.model = model;
    else skipped.push(`Model: ${parameters.Model}`);
  }
  return { params: next, skipped };
}
