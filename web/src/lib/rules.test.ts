import { toRequest, DEFAULT_PARAMS } from "./params";
import { formField, rule, validateRequest } from "./rules";

const valid = toRequest({ ...DEFAULT_PARAMS, prompt: "a cat" }, null);

describe("validateRequest", () => {
  it("accepts the defaults with a prompt", () => {
    expect(validateRequest(valid)).toEqual({});
  });

  it("reads the gateway's limits from openapi.json", () => {
    expect(rule("width")).toMatchObject({ minimum: 64, maximum: 2048, multipleOf: 8 });
    expect(rule("batch_size")).toMatchObject({ minimum: 1, maximum: 4 });
  });

  it("names each bad field with the rule it broke", () => {
    const errors = validateRequest({ ...valid, prompt: "  ", width: 100, height: 4096, steps: 0, cfg_scale: 31, batch_size: 5 });
    expect(errors).toEqual({
      prompt: "is required",
      width: "must be a multiple of 8",
      height: "must be between 64 and 2048",
      steps: "must be between 1 and 150",
      cfg_scale: "must be between 1 and 30",
      batch_size: "must be between 1 and 4",
    });
  });

  it("refuses fractions and empty numbers", () => {
    expect(validateRequest({ ...valid, steps: 2.5, width: Number.NaN })).toEqual({
      steps: "must be a whole number",
      width: "must be a number",
    });
  });
});

describe("nested and image fields", () => {
  it("checks hires and outpaint values by the gateway's rules, under the form's flat names", () => {
    const request = { ...valid, hires: { scale: 1, steps: 0, upscaler: "latent", denoising_strength: 1.5 }, outpaint: { left: 12, right: 0, top: 0, bottom: 4096 } };
    expect(validateRequest(request)).toEqual({
      hires_scale: "must be more than 1 and at most 4",
      hires_steps: "must be between 1 and 150",
      hires_denoising: "must be between 0 and 1",
      outpaint_left: "must be a multiple of 8",
      outpaint_bottom: "must be between 0 and 2048",
    });
  });

  it("checks the image settings only when an image is sent", () => {
    const bad = { ...valid, denoising_strength: 1.5, mask_blur: -1 };
    expect(validateRequest(bad)).toEqual({});
    expect(validateRequest({ ...bad, init_image: "abc" })).toEqual({ denoising_strength: "must be between 0 and 1", mask_blur: "must be between 0 and 64" });
  });

  it("names the gateway's fields by the form's keys", () => {
    expect(formField("body.width")).toBe("width");
    expect(formField("hires.steps")).toBe("hires_steps");
    expect(formField("body.outpaint.left")).toBe("outpaint_left");
    expect(formField("init_image")).toBe("init_image");
  });
});
