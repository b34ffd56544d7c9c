import { QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import type { Job } from "@/api/client";
import { makeQueryClient } from "@/api/queries";
import { DEFAULT_PARAMS, type FormParams } from "@/lib/params";
import { KEYS, loadJSON, saveJSON } from "@/lib/storage";
import { json, stubGateway } from "@/testing/gateway";
import { makeRequest } from "@/testing/requests";

import { GeneratePanel } from "./GeneratePanel";

const models = { models: [{ id: "tiny", name: "Tiny", family: "sd15", format: "diffusers", demo: false, loaded: true, inpainting: false, default_size: 64 }], default: "tiny" };
const samplers = { samplers: [{ id: "euler_a", name: "Euler a" }] };

const job: Job = {
  id: "j1",
  status: "running",
  progress: 25,
  step: 1,
  total_steps: 4,
  queue_position: null,
  priority: 0,
  attempts: 1,
  created_at: "2024-01-01T00:00:00Z",
  started_at: "2024-01-01T00:00:01Z",
  request: makeRequest({ prompt: "a fox", negative_prompt: "", width: 64, height: 64, steps: 4, cfg_scale: 7, sampler: "euler_a", seed: 1, batch_size: 1, priority: 0, model: "tiny", previews: false }),
  results: [],
};

const base = { "GET /api/v1/models": () => json(models), "GET /api/v1/samplers": () => json(samplers) };

function Harness({ initial = DEFAULT_PARAMS, onJob = () => {} }: { initial?: FormParams; onJob?: (id: string) => void }) {
  const [client] = useState(makeQueryClient);
  const [params, setParams] = useState(initial);
  const [jobId, setJobId] = useState<string | null>(() => loadJSON<string | null>(KEYS.activeJob, null));
  return (
    <QueryClientProvider client={client}>
      <GeneratePanel
        params={params}
        setParams={setParams}
        jobId={jobId}
        onJob={(id) => {
          onJob(id);
          setJobId(id);
        }}
      />
    </QueryClientProvider>
  );
}

afterEach(() => {
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe("GeneratePanel", () => {
  it("after a refused submit, focuses the first field in error and announces why", async () => {
    const seen = stubGateway(base);
    render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "", width: 65 }} />);
    await userEvent.click(screen.getByRole("button", { name: "Generate" }));
    expect(screen.getByLabelText("Prompt")).toHaveFocus();
    expect(screen.getByRole("alert")).toHaveTextContent("Not submitted. Prompt: is required; Width: must be a multiple of 8.");
    expect(seen.some((r) => r.method === "POST")).toBe(false);
  });

  it("a field the gateway refuses takes focus, with its message announced", async () => {
    stubGateway({
      ...base,
      "POST /api/v1/generate": () =>
        json({ error: { code: "invalid_request", message: "bad steps", details: [{ field: "body.steps", message: "too many for this model" }] } }, 400),
    });
    render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "a fox" }} />);
    await userEvent.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(screen.getByLabelText("Steps")).toHaveFocus());
    expect(screen.getByLabelText("Steps")).toHaveAccessibleDescription("Steps: too many for this model");
    expect(screen.getByRole("alert")).toHaveTextContent("Not submitted. Steps: too many for this model.");
  });

  it("announces status changes of the job, not every step", async () => {
    saveJSON(KEYS.activeJob, "j1");
    const events = [
      `event: progress\ndata: ${JSON.stringify({ type: "progress", job_id: "j1", step: 2, total: 4, progress: 50 })}\n\n`,
      `event: progress\ndata: ${JSON.stringify({ type: "progress", job_id: "j1", step: 3, total: 4, progress: 75 })}\n\n`,
    ];
    let finish: () => void = () => {};
    let stored: Job = job;
    stubGateway({
      ...base,
      // The watcher re-reads a terminal job once, for its complete results.
      "GET /api/v1/generate/j1": () => json(stored),
      "GET /api/v1/generate/j1/events": () =>
        new Response(
          new ReadableStream({
            start(controller) {
              for (const e of events) controller.enqueue(new TextEncoder().encode(e));
              finish = () => {
                const done: Job = { ...job, status: "completed", progress: 100, step: 4 };
                stored = done;
                const frame = { type: "status", job_id: "j1", status: "completed", terminal: true, job: done };
                controller.enqueue(new TextEncoder().encode(`event: status\ndata: ${JSON.stringify(frame)}\n\n`));
                controller.close();
              };
            },
          }),
          { headers: { "Content-Type": "text/event-stream" } },
        ),
    });
    render(<Harness />);
    await waitFor(() => expect(screen.getByTestId("progress-text")).toHaveTextContent("Step 3/4"));
    // The step counter lives outside every live region; only the status line is one.
    expect(screen.getByTestId("progress-text").closest("[aria-live],[role=status],[role=alert],[role=log]")).toBeNull();
    expect(screen.getByRole("region", { name: "Output" })).not.toHaveAttribute("aria-live");
    expect(screen.getByRole("status")).toHaveTextContent("Job running.");
    finish();
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Job completed."));
  });

  it("remembers submitted prompts, newest first, and puts one back when picked", async () => {
    const user = userEvent.setup();
    let n = 0;
    stubGateway({
      ...base,
      "POST /api/v1/generate": async (r) => {
        const body = (await r.json()) as Job["request"];
        n += 1;
        return json({ ...job, id: `j${n}`, status: "queued", request: body }, 202);
      },
      "GET /api/v1/generate/j1": () => json({ ...job, status: "completed" }),
      "GET /api/v1/generate/j2": () => json({ ...job, id: "j2", status: "completed" }),
    });
    const opened: string[] = [];
    render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "a fox" }} onJob={(id) => opened.push(id)} />);
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(opened).toEqual(["j1"]));
    const prompt = screen.getByLabelText("Prompt");
    await user.clear(prompt);
    await user.type(prompt, "a badger");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(opened).toEqual(["j1", "j2"]));
    const recent = screen.getByLabelText("Recent prompts");
    expect([...recent.querySelectorAll("option")].map((o) => o.textContent)).toEqual(["Pick one of the last 2", "a badger", "a fox"]);
    await user.selectOptions(recent, "a fox");
    expect(screen.getByLabelText("Prompt")).toHaveValue("a fox");
    expect(loadJSON(KEYS.promptHistory, [])).toEqual(["a badger", "a fox"]);
  });

  it("shows the latest preview of a running job large, updated as previews arrive", async () => {
    saveJSON(KEYS.activeJob, "j1");
    const preview = (step: number) =>
      `event: preview\ndata: ${JSON.stringify({ type: "preview", job_id: "j1", step, image: `data:image/jpeg;base64,AAA${step}` })}\n\n`;
    let push: (frame: string) => void = () => {};
    stubGateway({
      ...base,
      "GET /api/v1/generate/j1": () => json(job),
      "GET /api/v1/generate/j1/events": () =>
        new Response(
          new ReadableStream({
            start(controller) {
              push = (frame) => controller.enqueue(new TextEncoder().encode(frame));
            },
          }),
          { headers: { "Content-Type": "text/event-stream" } },
        ),
    });
    render(<Harness />);
    await waitFor(() => expect(screen.getByTestId("progress-text")).toHaveTextContent("Step 1/4"));
    push(preview(2));
    await waitFor(() => expect(screen.getByTestId("live-preview")).toHaveAttribute("src", "data:image/jpeg;base64,AAA2"));
    push(preview(3));
    await waitFor(() => expect(screen.getByTestId("live-preview")).toHaveAttribute("src", "data:image/jpeg;base64,AAA3"));
    expect(screen.getByTestId("live-preview")).toHaveClass("preview");
  });
});

describe("GeneratePanel hires fix", () => {
  it("sends hires with its settings when on, and says the final size", async () => {
    const user = userEvent.setup();
    const submitted: Job["request"][] = [];
    stubGateway({
      ...base,
      "POST /api/v1/generate": async (r) => {
        submitted.push((await r.json()) as Job["request"]);
        return json({ ...job, status: "queued", request: submitted[0] }, 202);
      },
      "GET /api/v1/generate/j1": () => json({ ...job, status: "completed" }),
    });
    render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "a fox", width: 64, height: 96 }} />);
    expect(screen.queryByLabelText("Upscale by")).toBeNull();
    await user.click(screen.getByLabelText("Hires fix"));
    expect(screen.getByText("Draws at 64×96, then upscales and refines to 128×192.")).toBeInTheDocument();
    await user.clear(screen.getByLabelText("Upscale by"));
    await user.type(screen.getByLabelText("Upscale by"), "1.5");
    await user.selectOptions(screen.getByLabelText("Upscaler"), "nearest");
    await user.clear(screen.getByLabelText("Hires steps"));
    await user.type(screen.getByLabelText("Hires steps"), "3");
    fireEvent.change(screen.getByLabelText("Hires denoising strength"), { target: { value: "0.55" } });
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(submitted).toHaveLength(1));
    expect(submitted[0]!.hires).toEqual({ scale: 1.5, upscaler: "nearest", steps: 3, denoising_strength: 0.55 });
    expect(submitted[0]!.init_image ?? null).toBeNull();
  });

  it("checks the hires fields by the gateway's rules, and maps the gateway's hires.steps to its own field", async () => {
    const user = userEvent.setup();
    stubGateway({
      ...base,
      "POST /api/v1/generate": () =>
        json({ error: { code: "invalid_request", message: "bad", details: [{ field: "hires.steps", message: "too many for the second pass" }] } }, 400),
    });
    render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "a fox", hires: true, hires_scale: 1 }} />);
    await user.click(screen.getByRole("button", { name: "Generate" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Not submitted. Upscale by: must be more than 1 and at most 4.");
    expect(screen.getByLabelText("Upscale by")).toHaveFocus();
    await user.clear(screen.getByLabelText("Upscale by"));
    await user.type(screen.getByLabelText("Upscale by"), "2");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(screen.getByLabelText("Hires steps")).toHaveFocus());
    expect(screen.getByLabelText("Hires steps")).toHaveAccessibleDescription("0: as many as Steps Hires steps: too many for the second pass");
    // The first pass's Steps field is not the one blamed.
    expect(screen.getByLabelText("Steps")).not.toHaveAttribute("aria-invalid");
  });
});
