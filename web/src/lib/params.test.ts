import type { GenerateRequest } from "@/api/client";
import { makeRequest } from "@/testing/requests";

import { DEFAULT_PARAMS, finalSize, fitSize, fromRequest, sizePresets, toRequest } from "./params";

describe("toRequest", () => {
  const params = { ...DEFAULT_PARAMS, prompt: "p", seed: 42 };
  it("sends -1 for a random seed, the value for a fixed one and the last seed for 'reuse last'", () => {
    expect(toRequest({ ...params, seedMode: "random" }, 7).seed).toBe(-1);
    expect(toRequest({ ...params, seedMode: "fixed" }, 7).seed).toBe(42);
    expect(toRequest({ ...params, seedMode: "last" }, 7).seed).toBe(7);
  });
  it("asks for live previews, which the studio shows from the first step", () => {
    expect(toRequest(params, null).previews).toBe(true);
  });
  it("leaves the model to the server default when none is picked", () => {
    expect(toRequest(params, null).model).toBeNull();
    expect(toRequest({ ...params, model: "tiny" }, null).model).toBe("tiny");
  });
});

describe("fromRequest", () => {
  const request: GenerateRequest = makeRequest({ prompt: "castle", negative_prompt: "fog", width: 768, height: 512, steps: 3, cfg_scale: 5, sampler: "ddim", seed: 99, batch_size: 2, priority: 4, model: "m", previews: false });
  it("reuse settings keeps the seed random; reuse seed fixes it", () => {
    const settings = fromRequest(DEFAULT_PARAMS, request, null);
    expect(settings).toMatchObject({ prompt: "castle", negative_prompt: "fog", width: 768, height: 512, steps: 3, sampler: "ddim", model: "m", seedMode: "random" });
    expect(fromRequest(DEFAULT_PARAMS, request, 1234)).toMatchObject({ seedMode: "fixed", seed: 1234 });
  });
});

describe("sizePresets", () => {
  it("offers 1024² for SDXL and 512² for SD 1.5, plus a native size outside the family list", () => {
    const base = { name: "m", format: "diffusers" as const, id: "m", demo: false, loaded: false, inpainting: false, kind: "checkpoint" };
    expect(sizePresets({ ...base, family: "sdxl", default_size: 1024 })[0]).toMatchObject({ width: 1024, height: 1024 });
    expect(sizePresets({ ...base, family: "sd15", default_size: 512 })[0]).toMatchObject({ width: 512, height: 512 });
    expect(sizePresets({ ...base, family: "sd15", default_size: 64 })[0]).toMatchObject({ width: 64, height: 64 });
  });
});

describe("image and hires fields", () => {
  const params = { ...DEFAULT_PARAMS, prompt: "p", width: 64, height: 64 };
  it("a text job carries hires only when it is on, and never the image tab's settings", () => {
    expect(toRequest(params, null)).not.toHaveProperty("hires");
    const text = toRequest({ ...params, hires: true, hires_scale: 2, hires_steps: 0, denoising_strength: 0.2, outpaint_left: 8 }, null, "text");
    expect(text.hires).toEqual({ scale: 2, upscaler: "latent", steps: null, denoising_strength: 0.7 });
    expect(text.denoising_strength).toBe(DEFAULT_PARAMS.denoising_strength);
    expect(text).not.toHaveProperty("outpaint");
  });

  it("an image job carries its settings, outpaint only when a side grows, and never hires", () => {
    const image = toRequest({ ...params, hires: true, denoising_strength: 0.3, mask_blur: 0, inpainting_fill: "fill" }, null, "image");
    expect(image).toMatchObject({ denoising_strength: 0.3, mask_blur: 0, inpainting_fill: "fill" });
    expect(image).not.toHaveProperty("hires");
    expect(image).not.toHaveProperty("outpaint");
    expect(toRequest({ ...params, outpaint_right: 16 }, null, "image").outpaint).toEqual({ left: 0, right: 16, top: 0, bottom: 0 });
  });

  it("reuse brings hires and image settings back into the form", () => {
    const hires = fromRequest(DEFAULT_PARAMS, makeRequest({ prompt: "h", width: 64, hires: { upscaler: "lanczos", width: 160, steps: 4, denoising_strength: 0.4 } }), null);
    expect(hires).toMatchObject({ hires: true, hires_scale: 2.5, hires_upscaler: "lanczos", hires_steps: 4, hires_denoising: 0.4 });
    const image = fromRequest(DEFAULT_PARAMS, makeRequest({ prompt: "i", init_image: "abc", denoising_strength: 0.2, outpaint: { left: 8, right: 0, top: 0, bottom: 24 } }), null);
    expect(image).toMatchObject({ hires: false, denoising_strength: 0.2, outpaint_left: 8, outpaint_bottom: 24 });
  });

  it("final sizes: hires scales on the 8-pixel grid, outpainting adds the borders", () => {
    expect(finalSize({ ...params, hires: true, hires_scale: 1.5, width: 72 }, "text")).toEqual({ width: 112, height: 96 });
    // 88 × 1.5 = 132 = 16.5 × 8: the worker's round() goes to the even 16.
    expect(finalSize({ ...params, hires: true, hires_scale: 1.5, width: 88 }, "text").width).toBe(128);
    expect(finalSize({ ...params, outpaint_left: 8, outpaint_top: 16 }, "image")).toEqual({ width: 72, height: 80 });
  });

  it("an image's size becomes the nearest one a job may ask for, keeping its shape", () => {
    expect(fitSize(99, 61)).toEqual({ width: 96, height: 64 });
    expect(fitSize(4096, 1024)).toEqual({ width: 2048, height: 512 });
    expect(fitSize(10, 10)).toEqual({ width: 64, height: 64 });
  });
});
