import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Job, JobPage } from "@/api/client";
import { KEYS, loadJSON } from "@/lib/storage";
import { json, stubGateway } from "@/testing/gateway";
import { makeRequest } from "@/testing/requests";

import App from "./App";

const models = { models: [{ id: "tiny", name: "Tiny", family: "sd15", format: "diffusers", demo: false, loaded: true, inpainting: false, default_size: 64 }], default: "tiny" };
const samplers = { samplers: [{ id: "euler_a", name: "Euler a", aliases: [] }, { id: "dpmpp_2m_karras", name: "DPM++ 2M Karras", aliases: [] }] };

function job(id: string, prompt: string): Job {
  return {
    id,
    status: "completed",
    progress: 100,
    step: 2,
    total_steps: 2,
    queue_position: null,
    priority: 0,
    attempts: 1,
    created_at: "2024-01-01T00:00:00Z",
    request: makeRequest({ prompt, negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7, sampler: "euler_a", seed: 5, batch_size: 1, priority: 0, model: "tiny", previews: false }),
    results: [{ image_url: `/outputs/${id}/0.png`, seed: 5, index: 0, infotext: prompt }],
  };
}

const base = {
  "GET /api/v1/models": () => json(models),
  "GET /api/v1/samplers": () => json(samplers),
  "GET /api/v1/ready": () => json({ ready: true, store: true, workers: [], reason: null }),
  "GET /api/v1/queue": () => json({ counts: {}, running: [], queued: [], max_queue_length: 10 }),
  "GET /api/v1/gallery": () => json({ items: [], total: 0, offset: 0, limit: 100, models: [] }),
};

function history(r: Request): Response {
  const offset = Number(new URL(r.url).searchParams.get("offset"));
  const items = Array.from({ length: 10 }, (_, i) => job(`h${offset + i}`, `prompt ${offset + i}`));
  const page: JobPage = { items, total: 25, offset, limit: 10 };
  return json(page);
}

beforeEach(() => window.history.replaceState(null, "", "/"));
afterEach(() => vi.unstubAllGlobals());

const tab = (name: string) => screen.getByRole("link", { name });

// Whole-app renders with several user steps: on a loaded CI machine they outgrow vitest's 5 s default.
describe("App", { timeout: 20_000 }, () => {
  it("opens the job of a deep link in the output area", async () => {
    stubGateway({ ...base, "GET /api/v1/generate/deep1": () => json(job("deep1", "a linked lighthouse")) });
    window.history.replaceState(null, "", "/?job=deep1#generate");
    render(<App />);
    expect(await screen.findByText("a linked lighthouse", { selector: ".job-prompt" })).toBeInTheDocument();
    expect(screen.getByTestId("result")).toBeInTheDocument();
  });

  it("History keeps its filter and page across tab switches; back and forward move between tabs", async () => {
    const user = userEvent.setup();
    stubGateway({ ...base, "GET /api/v1/generate": history });
    render(<App />);
    await user.click(tab("History"));
    expect(window.location.hash).toBe("#history");
    await user.selectOptions(await screen.findByLabelText("Status"), "completed");
    await user.click(screen.getByRole("button", { name: "Older" }));
    expect(await screen.findByText("11–20 of 25")).toBeInTheDocument();
    await user.click(tab("Gallery"));
    expect(await screen.findByRole("heading", { name: "Gallery" })).toBeInTheDocument();
    await user.click(tab("History"));
    expect(await screen.findByText("11–20 of 25")).toBeInTheDocument();
    expect(screen.getByLabelText("Status")).toHaveValue("completed");

    // Back: the Gallery tab again (each switch is a history entry).
    act(() => window.history.back());
    await waitFor(() => expect(tab("Gallery")).toHaveAttribute("aria-current", "page"));
    expect(window.location.hash).toBe("#gallery");
  });

  it("a dropped image's parameters fill the form and the Generate tab opens", async () => {
    const user = userEvent.setup();
    stubGateway({
      ...base,
      "POST /api/v1/png-info": () =>
        json({
          source: "a1111",
          info: "",
          items: {},
          parameters: { Prompt: "a lighthouse", "Negative prompt": "blurry", Steps: "23", "CFG scale": "6.5", Seed: "1234", Sampler: "DPM++ 2M", "Schedule type": "Karras", "Size-1": "512", "Size-2": "768", Model: "tiny" },
        }),
    });
    window.history.replaceState(null, "", "/#queue");
    render(<App />);
    await screen.findByRole("heading", { name: "Queue" });
    fireEvent.drop(window, { dataTransfer: { files: [new File(["png"], "x.png", { type: "image/png" })], types: ["Files"] } });
    await user.click(await screen.findByRole("button", { name: "Fill the form", hidden: true }));
    expect(await screen.findByLabelText("Prompt")).toHaveValue("a lighthouse");
    expect(screen.getByLabelText("Negative prompt")).toHaveValue("blurry");
    expect(screen.getByLabelText("Steps")).toHaveValue(23);
    expect(screen.getByLabelText("Width")).toHaveValue(512);
    expect(screen.getByLabelText("Height")).toHaveValue(768);
    expect(screen.getByLabelText("Seed value")).toHaveValue(1234);
    await waitFor(() => expect(screen.getByLabelText("Sampler")).toHaveValue("dpmpp_2m_karras"));
    // Persisted at once: a reload keeps what the image filled in.
    expect(loadJSON<{ prompt: string }>(KEYS.params, { prompt: "" }).prompt).toBe("a lighthouse");
  });
});
