import { DEFAULT_PARAMS } from "./params";
import { formFromParameters, matchSampler } from "./infotext";

const samplers = [
  { id: "euler_a", name: "Euler a", aliases: ["k_euler_a"] },
  { id: "dpmpp_2m", name: "DPM++ 2M", aliases: [] },
  { id: "dpmpp_2m_karras", name: "DPM++ 2M Karras", aliases: [] },
];

describe("matchSampler", () => {
  it("finds A1111 names, ComfyUI ids and schedule suffixes", () => {
    expect(matchSampler(samplers, "Euler a", undefined)).toBe("euler_a");
    expect(matchSampler(samplers, "DPM++ 2M", "Karras")).toBe("dpmpp_2m_karras");
    expect(matchSampler(samplers, "dpmpp_2m", "karras")).toBe("dpmpp_2m_karras");
    expect(matchSampler(samplers, "DPM++ 2M", "Automatic")).toBe("dpmpp_2m");
    expect(matchSampler(samplers, "k_euler_a", undefined)).toBe("euler_a");
    expect(matchSampler(samplers, "UniPC", undefined)).toBeNull();
  });
});

describe("formFromParameters", () => {
  it("fills every field the image carries and keeps the rest", () => {
    const current = { ...DEFAULT_PARAMS, batch_size: 3, priority: 2 };
    const { params, skipped } = formFromParameters(
      current,
      { Prompt: "a fox", "Negative prompt": "blurry", Steps: "23", "CFG scale": "6.5", Seed: "1234", "Size-1": "512", "Size-2": "768", Sampler: "Euler a", Model: "Tiny" },
      samplers,
      ["tiny"],
    );
    expect(params).toEqual({
      ...current,
      prompt: "a fox",
      negative_prompt: "blurry",
      steps: 23,
      cfg_scale: 6.5,
      seedMode: "fixed",
      seed: 1234,
      width: 512,
      height: 768,
      sampler: "euler_a",
      model: "tiny",
    });
    expect(skipped).toEqual([]);
  });

  it("names what it could not take instead of guessing", () => {
    const { params, skipped } = formFromParameters(DEFAULT_PARAMS, { Prompt: "x", Steps: "many", Sampler: "UniPC", Model: "sdxl-base" }, samplers, ["tiny"]);
    expect(params).toEqual({ ...DEFAULT_PARAMS, prompt: "x" });
    expect(skipped).toEqual(["Steps: many", "Sampler: UniPC", "Model: sdxl-base"]);
  });
});
