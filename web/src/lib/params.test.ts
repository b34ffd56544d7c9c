import type { GenerateRequest } from "@/api/client";

import { DEFAULT_PARAMS, fromRequest, sizePresets, toRequest } from "./params";

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
  const request: GenerateRequest = { prompt: "castle", negative_prompt: "fog", width: 768, height: 512, steps: 3, cfg_scale: 5, sampler: "ddim", seed: 99, batch_size: 2, priority: 4, model: "m", previews: false };
  it("reuse settings keeps the seed random; reuse seed fixes it", () => {
    const settings = fromRequest(DEFAULT_PARAMS, request, null);
    expect(settings).toMatchObject({ prompt: "castle", negative_prompt: "fog", width: 768, height: 512, steps: 3, sampler: "ddim", model: "m", seedMode: "random" });
    expect(fromRequest(DEFAULT_PARAMS, request, 1234)).toMatchObject({ seedMode: "fixed", seed: 1234 });
  });
});

describe("sizePresets", () => {
  it("offers 1024² for SDXL and 512² for SD 1.5, plus a native size outside the family list", () => {
    const base = { name: "m", format: "diffusers" as const, id: "m", demo: false, loaded: false, inpainting: false };
    expect(sizePresets({ ...base, family: "sdxl", default_size: 1024 })[0]).toMatchObject({ width: 1024, height: 1024 });
    expect(sizePresets({ ...base, family: "sd15", default_size: 512 })[0]).toMatchObject({ width: 512, height: 512 });
    expect(sizePresets({ ...base, family: "sd15", default_size: 64 })[0]).toMatchObject({ width: 64, height: 64 });
  });
});
