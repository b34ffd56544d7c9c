// The Generate form's state: what the user typed, kept in localStorage so a reload (or an error) loses nothing,
// and turned into the API's GenerateRequest only at submit time.
import type { GenerateRequest, JobResult, ModelInfo, Schemas } from "@/api/client";

import { fromControlNets, toControlNets, type ControlNetForm } from "./adapters";

export type SeedMode = "random" | "fixed" | "last";
export type ResizeMode = Schemas["ResizeMode"];
export type InpaintingFill = Schemas["InpaintingFill"];
/** Which tab a form belongs to: text-to-image (hires fix) or image-to-image (init image, mask, outpaint). */
export type FormMode = "text" | "image";

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
  // Hires fix (text tab): draw at width x height, upscale by hires_scale, refine.
  hires: boolean;
  hires_scale: number;
  hires_upscaler: string;
  /** Second-pass steps; 0 = as many as the first pass (A1111's convention). */
  hires_steps: number;
  hires_denoising: number;
  // Image tab: how the init image and its mask are used.
  denoising_strength: number;
  resize_mode: ResizeMode;
  mask_blur: number;
  inpaint_only_masked: boolean;
  inpaint_padding: number;
  inpainting_fill: InpaintingFill;
  mask_invert: boolean;
  outpaint_left: number;
  outpaint_right: number;
  outpaint_top: number;
  outpaint_bottom: number;
  // Adapters (both tabs; LoRAs and embeddings live in the prompt as A1111 writes them).
  /** VAE id; "" = the checkpoint's own. */
  vae: string;
  /** A1111's clip skip; 1 = the last layer (sent as no value). */
  clip_skip: number;
  controlnets: ControlNetForm[];
}

export const OUTPAINT_SIDES = ["left", "right", "top", "bottom"] as const;
export type OutpaintSide = (typeof OUTPAINT_SIDES)[number];

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
  hires: false,
  hires_scale: 2,
  hires_upscaler: "latent",
  hires_steps: 0,
  hires_denoising: 0.7,
  denoising_strength: 0.75,
  resize_mode: "resize",
  mask_blur: 4,
  inpaint_only_masked: false,
  inpaint_padding: 32,
  inpainting_fill: "original",
  mask_invert: false,
  outpaint_left: 0,
  outpaint_right: 0,
  outpaint_top: 0,
  outpaint_bottom: 0,
  vae: "",
  clip_skip: 1,
  controlnets: [],
};

/** Older or partial saved values are completed from the defaults, field by field. */
export function restoreParams(saved: Partial<FormParams> | null): FormParams {
  return { ...DEFAULT_PARAMS, ...(saved ?? {}) };
}

/**
 * The request a form stands for. The text tab adds hires fix when it is on; the image tab adds how its init
 * image is used (the image and mask ids themselves are added by the tab, which holds the uploads). Fields of
 * the other tab keep the gateway's defaults, so a text job never carries a stray strength.
 */
export function toRequest(params: FormParams, lastSeed: number | null, mode: FormMode = "text"): GenerateRequest {
  let seed = -1;
  if (params.seedMode === "fixed") seed = params.seed;
  if (params.seedMode === "last" && lastSeed !== null) seed = lastSeed;
  const image = mode === "image" ? params : DEFAULT_PARAMS;
  const outpaint = {
    left: params.outpaint_left,
    right: params.outpaint_right,
    top: params.outpaint_top,
    bottom: params.outpaint_bottom,
  };
  const growing = OUTPAINT_SIDES.some((side) => outpaint[side] !== 0);
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
    denoising_strength: image.denoising_strength,
    resize_mode: image.resize_mode,
    mask_blur: image.mask_blur,
    inpaint_only_masked: image.inpaint_only_masked,
    inpaint_padding: image.inpaint_padding,
    inpainting_fill: image.inpainting_fill,
    mask_invert: image.mask_invert,
    ...(mode === "image" && growing ? { outpaint } : {}),
    ...(params.vae ? { vae: params.vae } : {}),
    ...(params.clip_skip > 1 ? { clip_skip: params.clip_skip } : {}),
    ...(toControlNets(params.controlnets).length ? { controlnets: toControlNets(params.controlnets) } : {}),
    ...(mode === "text" && params.hires
      ? {
          hires: {
            scale: params.hires_scale,
            upscaler: params.hires_upscaler,
            steps: params.hires_steps === 0 ? null : params.hires_steps,
            denoising_strength: params.hires_denoising,
          },
        }
      : {}),
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
    ...hiresFrom(current, request),
    ...imageFrom(current, request),
    vae: request.vae ?? "",
    clip_skip: request.clip_skip ?? 1,
    controlnets: fromControlNets(request.controlnets),
    ...(seed === null ? { seedMode: "random" as const } : { seedMode: "fixed" as const, seed }),
  };
}

function hiresFrom(current: FormParams, request: GenerateRequest): Partial<FormParams> {
  const hires = request.hires;
  if (!hires) return { hires: false };
  return {
    hires: true,
    // A job that named a final size instead of a factor: the factor that gives its width.
    hires_scale: hires.scale ?? (hires.width ? Math.round((hires.width / request.width) * 100) / 100 : current.hires_scale),
    hires_upscaler: hires.upscaler,
    hires_steps: hires.steps ?? 0,
    hires_denoising: hires.denoising_strength,
  };
}

/** How a job used its init image; a text job leaves the image settings as the form has them. */
function imageFrom(current: FormParams, request: GenerateRequest): Partial<FormParams> {
  if (!request.init_image) return {};
  const outpaint = request.outpaint;
  return {
    denoising_strength: request.denoising_strength ?? current.denoising_strength,
    resize_mode: request.resize_mode ?? current.resize_mode,
    mask_blur: request.mask_blur ?? current.mask_blur,
    inpaint_only_masked: request.inpaint_only_masked ?? current.inpaint_only_masked,
    inpaint_padding: request.inpaint_padding ?? current.inpaint_padding,
    inpainting_fill: request.inpainting_fill ?? current.inpainting_fill,
    mask_invert: request.mask_invert ?? current.mask_invert,
    outpaint_left: outpaint?.left ?? 0,
    outpaint_right: outpaint?.right ?? 0,
    outpaint_top: outpaint?.top ?? 0,
    outpaint_bottom: outpaint?.bottom ?? 0,
  };
}

/** The size a job of this form draws at its end: hires fix scales it, outpainting grows it. */
export function finalSize(params: FormParams, mode: FormMode): { width: number; height: number } {
  if (mode === "text" && params.hires) {
    // The worker keeps the result on the 8-pixel grid the pipelines need, rounding as Python does (half to even).
    const snap = (v: number) => Math.max(8, roundHalfEven((v * params.hires_scale) / 8) * 8);
    return { width: snap(params.width), height: snap(params.height) };
  }
  if (mode === "image") {
    return {
      width: params.width + params.outpaint_left + params.outpaint_right,
      height: params.height + params.outpaint_top + params.outpaint_bottom,
    };
  }
  return { width: params.width, height: params.height };
}

function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** An image's size as the nearest size a job may ask for (multiples of 8, 64–2048), keeping its shape. */
export function fitSize(width: number, height: number): { width: number; height: number } {
  const clamp = (v: number) => Math.min(2048, Math.max(64, Math.round(v / 8) * 8));
  const scale = Math.min(1, 2048 / Math.max(width, height));
  return { width: clamp(width * scale), height: clamp(height * scale) };
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
