import { QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import { makeQueryClient } from "@/api/queries";
import { json, stubGateway } from "@/testing/gateway";

import { AdapterPicker } from "./AdapterPicker";

const entry = (id: string, family: string, kind: string) => ({ id, name: id, family, format: "single-file", kind, loaded: false, demo: false, inpainting: false, default_size: 512 });
const listings: Record<string, unknown[]> = {
  lora: [entry("ink", "sd15", "lora"), entry("sky", "sd15", "lora"), entry("ink-xl", "sdxl", "lora")],
  embedding: [entry("easyneg", "sd15", "embedding")],
};

function Harness({ initial }: { initial: string }) {
  const [client] = useState(makeQueryClient);
  const [prompt, setPrompt] = useState(initial);
  return (
    <QueryClientProvider client={client}>
      <label htmlFor="prompt">Prompt</label>
      <textarea id="prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} />
      <AdapterPicker prompt={prompt} onPrompt={setPrompt} family="sd15" />
    </QueryClientProvider>
  );
}

describe("AdapterPicker", () => {
  beforeEach(() => {
    stubGateway({
      "GET /api/v1/models": (request) => json({ models: listings[new URL(request.url).searchParams.get("kind") ?? ""] ?? [], default: null }),
    });
  });
  afterEach(() => vi.unstubAllGlobals());

  it("lists the model family's files, searchable, and all families on request", async () => {
    render(<Harness initial="" />);
    expect(await screen.findByRole("button", { name: "Add LoRA ink" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Add embedding easyneg" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Add LoRA ink-xl" })).not.toBeInTheDocument();
    await userEvent.selectOptions(screen.getByLabelText("Family"), "");
    expect(screen.getByRole("button", { name: "Add LoRA ink-xl" })).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText("Search"), "sk");
    expect(screen.getByRole("button", { name: "Add LoRA sky" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Add LoRA ink" })).not.toBeInTheDocument();
    expect(screen.getByText("None match.")).toBeInTheDocument();
  });

  it("inserts a LoRA tag at the cursor, then its weight slider rewrites the tag", async () => {
    render(<Harness initial="a cat, oil painting" />);
    const box = screen.getByLabelText<HTMLTextAreaElement>("Prompt");
    box.focus();
    box.setSelectionRange(6, 6);
    await userEvent.click(await screen.findByRole("button", { name: "Add LoRA ink" }));
    expect(box.value).toBe("a cat, <lora:ink:1> oil painting");
    await userEvent.click(screen.getByRole("button", { name: "Add embedding easyneg" }));
    const slider = screen.getByLabelText("ink");
    fireEvent.change(slider, { target: { value: "0.65" } });
    expect(box.value).toContain("<lora:ink:0.65>");
    await userEvent.click(screen.getByRole("button", { name: "Remove LoRA ink" }));
    expect(box.value).not.toContain("<lora:ink");
    expect(box.value).toContain("easyneg");
  });
});
