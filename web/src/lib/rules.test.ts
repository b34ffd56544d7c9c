import { toRequest, DEFAULT_PARAMS } from "./params";
import { rule, validateRequest } from "./rules";

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
