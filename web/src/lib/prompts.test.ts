import { applySnippet, deleteStyle, loadPromptHistory, loadStyles, PROMPT_HISTORY_SIZE, rememberPrompt, saveStyle } from "./prompts";

afterEach(() => window.localStorage.clear());

describe("prompt history", () => {
  it("keeps the last 50 distinct prompts, newest first, across reloads", () => {
    let history: string[] = [];
    for (let i = 0; i < PROMPT_HISTORY_SIZE + 5; i += 1) history = rememberPrompt(history, `prompt ${i}`);
    history = rememberPrompt(history, "prompt 20");
    history = rememberPrompt(history, "   ");
    expect(history).toHaveLength(PROMPT_HISTORY_SIZE);
    expect(history.slice(0, 3)).toEqual(["prompt 20", "prompt 54", "prompt 53"]);
    expect(history.filter((p) => p === "prompt 20")).toHaveLength(1);
    expect(history).not.toContain("prompt 4");
    expect(loadPromptHistory()).toEqual(history);
  });

  it("ignores a saved value of the wrong shape", () => {
    window.localStorage.setItem("ablerefusal.promptHistory", JSON.stringify({ not: "a list" }));
    expect(loadPromptHistory()).toEqual([]);
  });
});

describe("styles", () => {
  it("are saved by name, replaced, deleted and kept across reloads", () => {
    let styles = saveStyle([], { name: "oil", prompt: "oil painting", negative_prompt: "photo" });
    styles = saveStyle(styles, { name: "anime", prompt: "anime", negative_prompt: "" });
    styles = saveStyle(styles, { name: "oil", prompt: "thick oil painting", negative_prompt: "photo" });
    expect(styles.map((s) => [s.name, s.prompt])).toEqual([
      ["anime", "anime"],
      ["oil", "thick oil painting"],
    ]);
    expect(loadStyles()).toEqual(styles);
    expect(deleteStyle(styles, "anime").map((s) => s.name)).toEqual(["oil"]);
    expect(loadStyles().map((s) => s.name)).toEqual(["oil"]);
  });

  it("append after a comma, or wrap with {prompt}", () => {
    expect(applySnippet("a fox", "oil painting")).toBe("a fox, oil painting");
    expect(applySnippet("a fox, ", "oil painting")).toBe("a fox, oil painting");
    expect(applySnippet("", "oil painting")).toBe("oil painting");
    expect(applySnippet("a fox", "masterpiece, {prompt}, 4k")).toBe("masterpiece, a fox, 4k");
    expect(applySnippet("a fox", "  ")).toBe("a fox");
  });
});
