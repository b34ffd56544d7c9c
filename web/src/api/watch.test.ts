import type { Job } from "./client";
import { applyEvent, parseSse } from "./watch";

const job: Job = {
  id: "j1",
  status: "queued",
  progress: 0,
  step: 0,
  total_steps: 0,
  queue_position: 2,
  priority: 0,
  attempts: 0,
  created_at: "2024-01-01T00:00:00Z",
  request: { prompt: "p", negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7.5, sampler: "euler_a", seed: 1, batch_size: 1, priority: 0, model: null },
  results: [],
};

describe("parseSse", () => {
  it("splits complete frames, skips pings and keeps the unfinished tail", () => {
    const { events, rest } = parseSse('event: progress\ndata: {"a":1}\n\n: ping\n\nevent: status\r\ndata: {"b"');
    expect(events).toEqual([{ event: "progress", data: '{"a":1}' }]);
    expect(rest).toBe('event: status\ndata: {"b"');
    expect(parseSse(rest + ":2}\n\n").events).toEqual([{ event: "status", data: '{"b":2}' }]);
  });
  it("joins multi-line data", () => {
    expect(parseSse("data: a\ndata: b\n\n").events).toEqual([{ event: "message", data: "a\nb" }]);
  });
});

describe("applyEvent", () => {
  it("a status event replaces the whole job", () => {
    const next = { ...job, status: "completed" as const };
    expect(applyEvent(job, { type: "status", job_id: "j1", status: "completed", terminal: true, job: next })).toBe(next);
  });
  it("progress moves a queued job to running with step x/y", () => {
    expect(applyEvent(job, { type: "progress", job_id: "j1", step: 3, total: 8, progress: 37.5 })).toMatchObject({
      status: "running",
      step: 3,
      total_steps: 8,
      progress: 37.5,
      queue_position: null,
    });
  });
  it("a preview sets the data URL; an image adds a result in index order", () => {
    expect(applyEvent(job, { type: "preview", job_id: "j1", step: 2, image: "data:image/jpeg;base64,AA" }).preview).toBe("data:image/jpeg;base64,AA");
    const one = applyEvent(job, { type: "image", job_id: "j1", result: { image_url: "/outputs/j1/1.png", seed: 6, index: 1 } });
    const both = applyEvent(one, { type: "image", job_id: "j1", result: { image_url: "/outputs/j1/0.png", seed: 5, index: 0 } });
    expect(both.results?.map((r) => r.seed)).toEqual([5, 6]);
  });
  it("ignores what it does not know", () => {
    expect(applyEvent(job, { type: "other" })).toBe(job);
    expect(applyEvent(job, "text")).toBe(job);
  });
});
