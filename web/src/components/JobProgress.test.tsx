import { render, screen } from "@testing-library/react";

import type { Job } from "@/api/client";
import { makeRequest } from "@/testing/requests";

import { JobProgress } from "./JobProgress";

const base: Job = {
  id: "j",
  status: "queued",
  progress: 0,
  step: 0,
  total_steps: 0,
  queue_position: 3,
  priority: 0,
  attempts: 0,
  created_at: "2024-01-01T00:00:00Z",
  request: makeRequest({ prompt: "p", negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7.5, sampler: "euler_a", seed: 1, batch_size: 1, priority: 0, model: null, previews: false }),
  results: [],
};

describe("JobProgress", () => {
  it("shows the queue position while queued, and no progress bar", () => {
    render(<JobProgress job={base} />);
    expect(screen.getByTestId("queue-position")).toHaveTextContent("Position 3 in the queue");
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
  });

  it("shows step x/y, the bar's value, an ETA and the preview while running", () => {
    const started = new Date(Date.now() - 20_000).toISOString();
    render(<JobProgress job={{ ...base, status: "running", queue_position: null, step: 2, total_steps: 8, progress: 25, started_at: started, preview: "data:image/jpeg;base64,AA" }} />);
    expect(screen.getByRole("progressbar", { name: "Generation progress" })).toHaveAttribute("aria-valuenow", "25");
    expect(screen.getByTestId("progress-text")).toHaveTextContent(/^Step 2\/8 · 25% · about 1 min \d+ s left$/);
    expect(screen.getByAltText("Live preview at step 2")).toHaveAttribute("src", "data:image/jpeg;base64,AA");
  });

  it("without an event stream, shows the job read's preview URL, new at each step", () => {
    const running: Job = { ...base, status: "running", queue_position: null, step: 3, total_steps: 8, progress: 37.5, preview: null, preview_url: "/api/v1/generate/j/preview" };
    const { rerender } = render(<JobProgress job={running} />);
    expect(screen.getByAltText("Live preview at step 3")).toHaveAttribute("src", "/api/v1/generate/j/preview?step=3");
    rerender(<JobProgress job={{ ...running, step: 4 }} />);
    expect(screen.getByAltText("Live preview at step 4")).toHaveAttribute("src", "/api/v1/generate/j/preview?step=4");
  });

  it("says why a job failed", () => {
    render(<JobProgress job={{ ...base, status: "failed", queue_position: null, error: { code: "out_of_memory", message: "CUDA out of memory" } }} />);
    expect(screen.getByRole("alert")).toHaveTextContent("CUDA out of memory (out_of_memory)");
  });
});
