import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Job, QueueStatus } from "@/api/client";
import { makeQueryClient } from "@/api/queries";
import { json, stubGateway } from "@/testing/gateway";
import { makeRequest } from "@/testing/requests";

import { QueuePanel } from "./QueuePanel";

const queued: Job = {
  id: "q1",
  status: "queued",
  progress: 0,
  step: 0,
  total_steps: 0,
  queue_position: 1,
  priority: 0,
  attempts: 0,
  created_at: "2024-01-01T00:00:00Z",
  request: makeRequest({ prompt: "waiting in line", negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7, sampler: "euler_a", seed: 1, batch_size: 1, priority: 0, model: "tiny", previews: false }),
  results: [],
};
const counts = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0, timed_out: 0 };
const queue = (jobs: Job[], cancelled: number): QueueStatus => ({
  counts: { ...counts, queued: jobs.length, cancelled },
  running: [],
  queued: jobs,
  max_queue_length: 1000,
});

afterEach(() => vi.unstubAllGlobals());

describe("QueuePanel", () => {
  it("cancels a queued job and re-reads the queue at once, not at the next poll", async () => {
    let state = queue([queued], 0);
    const seen = stubGateway({
      "GET /api/v1/queue": () => json(state),
      "POST /api/v1/generate/q1/cancel": () => {
        state = queue([], 1);
        return json({ ...queued, status: "cancelled" });
      },
    });
    render(
      <QueryClientProvider client={makeQueryClient()}>
        <QueuePanel />
      </QueryClientProvider>,
    );
    await userEvent.click(await screen.findByRole("button", { name: "Cancel queued job waiting in line" }));
    expect(await screen.findByText("The queue is empty.")).toBeInTheDocument();
    expect(within(screen.getByTestId("count-cancelled")).getByText("1")).toBeInTheDocument();
    expect(seen.map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual([
      "GET /api/v1/queue",
      "POST /api/v1/generate/q1/cancel",
      "GET /api/v1/queue",
    ]);
  });

  it("keeps the last good queue on screen beside the error of a failed read", async () => {
    let up = true;
    stubGateway({
      "GET /api/v1/queue": () => (up ? json(queue([queued], 0)) : json({ error: { code: "unavailable", message: "store unreachable" } }, 503)),
    });
    const client = makeQueryClient();
    render(
      <QueryClientProvider client={client}>
        <QueuePanel />
      </QueryClientProvider>,
    );
    expect(await screen.findByText("waiting in line")).toBeInTheDocument();
    up = false;
    await client.refetchQueries();
    expect(await screen.findByRole("alert")).toHaveTextContent("Queue: store unreachable");
    expect(screen.getByText("waiting in line")).toBeInTheDocument();
  });
});
