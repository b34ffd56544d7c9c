// The studio's adapter helpers, pure: A1111's `<lora:name:weight>` tags in a prompt (read, insert at the
// cursor, reweight, remove), and the ControlNet units of the form as the request's `controlnets`.
import type { GenerateRequest, Schemas } from "@/api/client";

export type ControlMode = Schemas["ControlMode"];
export type ControlNetSpec = Schemas["ControlNetSpec"];

/** One ControlNet unit as the form keeps it: its image is an upload (id and URL), or none picked yet. */
export interface ControlNetForm {
  image: { id: string; url: string } | null;
  model: string;
  preprocessor: string;
  weight: number;
  guidance_start: number;
  guidance_end: number;
  control_mode: ControlMode;
}

export const NEW_UNIT: ControlNetForm = {
  image: null,
  model: "",
  preprocessor: "canny",
  weight: 1,
  guidance_start: 0,
  guidance_end: 1,
  control_mode: "balanced",
};

export interface LoraTag {
  name: string;
  weight: number;
  /** Where the tag is in the prompt: [start, end). */
  start: number;
  end: number;
}

// The gateway's parser (prompt_syntax.py) reads <lora:name> and <lora:name:weight>, case-insensitively.
const TAG = /<lora:([^:>]*)(?::([^>]*))?>/gi;

/** The prompt's LoRA tags, in order. */
export function loraTags(prompt: string): LoraTag[] {
  const tags: LoraTag[] = [];
  for (const match of prompt.matchAll(TAG)) {
    const weight = match[2] === undefined ? 1 : Number(match[2]);
    const start = match.index ?? 0;
    tags.push({ name: (match[1] ?? "").trim(), weight, start, end: start + match[0].length });
  }
  return tags;
}

/** A weight as a tag writes it: no trailing zeros, at most two decimals. */
export function formatWeight(weight: number): string {
  return String(Math.round(weight * 100) / 100);
}

export function loraTag(name: string, weight = 1): string {
  return `<lora:${name}:${formatWeight(weight)}>`;
}

/**
 * `text` inserted into `prompt` at the selection [start, end), with a space on each side where it would touch
 * a word; the new prompt and the cursor position after the insertion.
 */
export function insertAt(prompt: string, start: number, end: number, text: string): { prompt: string; cursor: number } {
  const before = prompt.slice(0, start);
  const after = prompt.slice(end);
  const lead = before === "" || /\s$/.test(before) ? "" : " ";
  const trail = after === "" || /^\s/.test(after) ? "" : " ";
  const inserted = lead + text + trail;
  return { prompt: before + inserted + after, cursor: before.length + lead.length + text.length };
}

/** The prompt with every tag of `name` at `weight`. */
export function setTagWeight(prompt: string, name: string, weight: number): string {
  return prompt.replace(TAG, (tag: string, tagName: string) => (tagName.trim() === name ? loraTag(name, weight) : tag));
}

/** The prompt without the tags of `name` (and the space one leaves behind). */
export function removeTag(prompt: string, name: string): string {
  return prompt
    .replace(TAG, (tag: string, tagName: string) => (tagName.trim() === name ? "\u0000" : tag))
    .replace(/ ?\u0000 ?/g, (gap) => (gap.length === 3 ? " " : ""))
    .trim();
}

/** The units that can be sent (an image and a model chosen), as the request's `controlnets`. */
export function toControlNets(units: ControlNetForm[]): NonNullable<GenerateRequest["controlnets"]> {
  return units
    .filter((u) => u.image !== null && u.model !== "")
    .map((u) => ({
      model: u.model,
      image: u.image?.id ?? "",
      preprocessor: u.preprocessor,
      weight: u.weight,
      guidance_start: u.guidance_start,
      guidance_end: u.guidance_end,
      control_mode: u.control_mode,
      // The gateway's defaults, which the studio does not offer to change.
      resize_mode: "resize" as const,
      processor_res: 512,
      pixel_perfect: false,
    }));
}

/** A job's units back in the form ("reuse settings"): their images are the uploads the job holds. */
export function fromControlNets(specs: GenerateRequest["controlnets"]): ControlNetForm[] {
  return (specs ?? []).map((s) => ({
    image: { id: s.image, url: `/api/v1/uploads/${s.image}` },
    model: s.model,
    preprocessor: s.preprocessor ?? "none",
    weight: s.weight ?? 1,
    guidance_start: s.guidance_start ?? 0,
    guidance_end: s.guidance_end ?? 1,
    control_mode: s.control_mode ?? "balanced",
  }));
}
