import type { Job } from "./client";
import { applyEvent, sleep, sseEvents, type SseEvent } from "./watch";

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
  request: { prompt: "p", negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7.5, sampler: "euler_a", seed: 1, batch_size: 1, priority: 0, model: null, previews: false },
  results: [],
};

/** A response body that arrives in exactly these chunks, as a proxy may cut it. */
function body(...chunks: string[]): ReadableStream<Uint8Array<ArrayBuffer>> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array<ArrayBuffer>>): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of sseEvents(stream)) events.push(event);
  return events;
}

describe("sseEvents", () => {
  it("keeps a \\r\\n split across two chunks as one line ending", async () => {
    // One event whose data has two lines; a parser that ends the line at the \r and again at the \n sees
    // a blank line there and dispatches "a" and "b" as two events.
    expect(await collect(body("data: a\r", "\ndata: b\r\n\r\n"))).toEqual([{ event: "message", data: "a\nb" }]);
  });
  it("splits frames across chunks, skips pings and names events", async () => {
    const events = await collect(body('event: progress\ndata: {"a":1}\n\n: ping\n\nevent: sta', 'tus\r\ndata: {"b"', ":2}\n\n"));
    expect(events).toEqual([
      { event: "progress", data: '{"a":1}' },
      { event: "status", data: '{"b":2}' },
    ]);
  });
  it("joins multi-line data", async () => {
    expect(await collect(body("data: a\ndata: b\n\n"))).toEqual([{ event: "message", data: "a\nb" }]);
  });
});

describe("sleep", () => {
  it("leaves no abort listener behind, however many times it waits on one signal", async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    let listeners = 0;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    vi.spyOn(signal, "addEventListener").mockImplementation((type, listener, options) => {
      listeners += 1;
      add(type, listener, options);
    });
    vi.spyOn(signal, "removeEventListener").mockImplementation((type, listener, options) => {
      listeners -= 1;
      remove(type, listener, options);
    });
    for (let i = 0; i < 5; i++) await sleep(1, signal);
    expect(listeners).toBe(0);
    const pending = sleep(60_000, signal);
    controller.abort();
    await pending;
    expect(listeners).toBe(0);
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
