import { fromControlNets, insertAt, loraTag, loraTags, NEW_UNIT, removeTag, setTagWeight, toControlNets } from "./adapters";

describe("LoRA tags in a prompt", () => {
  it("reads the tags the gateway reads, with weight 1 when left out", () => {
    const tags = loraTags("a cat <lora:ink:0.8>, <LORA:sky> and <lora:odd:x>");
    expect(tags.map((t) => [t.name, t.weight])).toEqual([["ink", 0.8], ["sky", 1], ["odd", NaN]]);
    const [first] = tags;
    expect(first && "a cat <lora:ink:0.8>".slice(first.start, first.end)).toBe("<lora:ink:0.8>");
  });

  it("inserts at the cursor, spaced from the words around it", () => {
    expect(insertAt("a cat", 5, 5, loraTag("ink"))).toEqual({ prompt: "a cat <lora:ink:1>", cursor: 18 });
    expect(insertAt("a cat", 0, 0, "emb")).toEqual({ prompt: "emb a cat", cursor: 3 });
    expect(insertAt("a  cat", 2, 2, "emb").prompt).toBe("a emb cat");
    // A selection is replaced.
    expect(insertAt("a dog here", 2, 5, "cat").prompt).toBe("a cat here");
    expect(insertAt("", 0, 0, "x")).toEqual({ prompt: "x", cursor: 1 });
  });

  it("reweights and removes every tag of one name only", () => {
    const prompt = "a <lora:ink:1> cat <lora:sky:0.5> <lora:ink>";
    expect(setTagWeight(prompt, "ink", 0.35)).toBe("a <lora:ink:0.35> cat <lora:sky:0.5> <lora:ink:0.35>");
    expect(setTagWeight(prompt, "sky", 1.0000001)).toBe("a <lora:ink:1> cat <lora:sky:1> <lora:ink>");
    expect(removeTag(prompt, "ink")).toBe("a cat <lora:sky:0.5>");
    expect(removeTag("<lora:ink:1>", "ink")).toBe("");
  });
});

describe("ControlNet units", () => {
  it("sends only units with an image and a model, with the gateway's defaults for the rest", () => {
    const ready = { ...NEW_UNIT, image: { id: "a".repeat(64), url: "/u" }, model: "cn", weight: 0.5 };
    expect(toControlNets([NEW_UNIT, { ...NEW_UNIT, model: "cn" }, ready])).toEqual([
      {
        model: "cn", image: "a".repeat(64), preprocessor: "canny", weight: 0.5, guidance_start: 0, guidance_end: 1,
        control_mode: "balanced", resize_mode: "resize", processor_res: 512, pixel_perfect: false,
      },
    ]);
  });

  it("brings a job's units back with their uploads", () => {
    const [unit] = fromControlNets(toControlNets([{ ...NEW_UNIT, image: { id: "b".repeat(64), url: "" }, model: "cn" }]));
    expect(unit).toEqual({ ...NEW_UNIT, model: "cn", image: { id: "b".repeat(64), url: `/api/v1/uploads/${"b".repeat(64)}` } });
  });
});
