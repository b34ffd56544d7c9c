import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import { useState } from "react";

import type { ModelInfo } from "@/api/client";
import { makeQueryClient } from "@/api/queries";
import { DEFAULT_PARAMS } from "@/lib/params";
import { json, stubGateway } from "@/testing/gateway";

import { AdapterFields } from "./AdapterFields";

const entry = (id: string, family: string, kind: string) => ({ id, name: id, family, format: "single-file", kind, loaded: false, demo: false, inpainting: false, default_size: 512 });
const listings: Record<string, unknown[]> = { vae: [entry("ft-mse", "sd15", "vae"), entry("sdxl-vae", "sdxl", "vae")] };

function Harness() {
  const [client] = useState(makeQueryClient);
  const [params, setParams] = useState({ ...DEFAULT_PARAMS, model: "big-xl" });
  const models = [entry("big-xl", "sdxl", "checkpoint")] as unknown as ModelInfo[];
  return (
    <QueryClientProvider client={client}>
      <AdapterFields params={params} onChange={setParams} errors={{}} models={models} defaultModel={null} />
    </QueryClientProvider>
  );
}

describe("AdapterFields", () => {
  beforeEach(() => {
    stubGateway({
      "GET /api/v1/models": (request) => json({ models: listings[new URL(request.url).searchParams.get("kind") ?? ""] ?? [], default: null }),
      "GET /api/v1/controlnet/preprocessors": () => json({ preprocessors: [] }),
    });
  });
  afterEach(() => vi.unstubAllGlobals());

  it("offers every VAE, the model family's first, since a VAE's family is only a guess from its name", async () => {
    render(<Harness />);
    const select = screen.getByLabelText("VAE");
    await waitFor(() => expect(within(select).getAllByRole("option")).toHaveLength(3));
    expect(within(select).getAllByRole("option").map((o) => o.getAttribute("value"))).toEqual(["", "sdxl-vae", "ft-mse"]);
  });
});
