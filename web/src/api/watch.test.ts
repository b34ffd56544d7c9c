import { json, stubGateway } from "@/testing/gateway";
import { fakeSockets, type FakeSocket } from "@/testing/socket";
import { makeRequest } from "@/testing/requests";

import type { Job } from "./client";
import { applyEvent, sleep, sseEvents, watchJob, type SseEvent } from "./watch";
import { JobSocket } from "./ws";

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
  request: makeRequest({ prompt: "p", negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7.5, sampler: "euler_a", seed: 1, batch_size: 1, priority: 0, model: null, previews: false }),
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

describe("watchJob: WebSocket, then SSE, then polling", () => {
  const running: Job = { ...job, status: "running", queue_position: null, step: 1, total_steps: 4 };
  const completed: Job = { ...job, status: "completed", queue_position: null, step: 4, total_steps: 4, progress: 100 };
  const statusFrame = (j: Job) => ({ type: "status", job_id: "j1", status: j.status, terminal: j.status === "completed", job: j });
  const sse = (...frames: unknown[]) => frames.map((f) => `event: x\ndata: ${JSON.stringify(f)}\n\n`).join("");

  afterEach(() => {
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  function setup(options: { backoffMs?: number } = {}) {
    const sockets = fakeSockets();
    const socket = new JobSocket({ open: sockets.open, url: () => "ws://gw/api/v1/ws", initialBackoffMs: options.backoffMs ?? 60_000 });
    const seen: Job[] = [];
    return { sockets, socket, seen, onJob: (j: Job) => seen.push(j) };
  }

  const paths = (requests: Request[]) => requests.map((r) => new URL(r.url).pathname);
  const nextSocket = (sockets: ReturnType<typeof fakeSockets>, n: number): Promise<FakeSocket> =>
    vi.waitFor(() => {
      expect(sockets.made.length).toBeGreaterThanOrEqual(n);
      return sockets.at(n - 1);
    });

  it("follows the job over the socket when it opens, without an event stream", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    let stored = running;
    const requests = stubGateway({ "GET /api/v1/generate/j1": () => json(stored) });
    const { sockets, socket, seen, onJob } = setup();
    const done = watchJob("j1", onJob, new AbortController().signal, 5, socket);
    const ws = await nextSocket(sockets, 1);
    ws.accept();
    await vi.waitFor(() => expect(ws.subscribed()).toEqual(["j1"]));
    ws.push(statusFrame(running));
    ws.push({ type: "progress", job_id: "j1", step: 3, total: 4, progress: 75 });
    stored = completed;
    ws.push(statusFrame(completed));
    await done;
    expect(seen.map((j) => `${j.status}:${j.step}`)).toEqual(["running:1", "running:1", "running:3", "completed:4", "completed:4"]);
    // The first read, and the re-read of the terminal job; no SSE, no polling.
    expect(paths(requests)).toEqual(["/api/v1/generate/j1", "/api/v1/generate/j1"]);
    expect(console.warn).not.toHaveBeenCalled();
  });

  it("uses SSE when the socket cannot open", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    let stored = running;
    const requests = stubGateway({
      "GET /api/v1/generate/j1": () => json(stored),
      "GET /api/v1/generate/j1/events": () => {
        stored = completed;
        return new Response(sse({ type: "progress", job_id: "j1", step: 2, total: 4, progress: 50 }, statusFrame(completed)));
      },
    });
    const { sockets, socket, seen, onJob } = setup();
    const done = watchJob("j1", onJob, new AbortController().signal, 5, socket);
    (await nextSocket(sockets, 1)).refuse();
    await done;
    expect(paths(requests)).toEqual(["/api/v1/generate/j1", "/api/v1/generate/j1/events", "/api/v1/generate/j1"]);
    expect(seen.map((j) => `${j.status}:${j.step}`)).toEqual(["running:1", "running:2", "completed:4", "completed:4"]);
    expect(sockets.at(0).sent).toEqual([]);
  });

  it("polls when neither the socket nor the event stream is available", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const answers = [running, running, { ...running, step: 2 }, completed];
    const requests = stubGateway({
      "GET /api/v1/generate/j1": () => json(answers.shift()),
      "GET /api/v1/generate/j1/events": () => json({ error: { code: "internal", message: "no streams here" } }, 502),
    });
    const { sockets, socket, seen, onJob } = setup();
    const done = watchJob("j1", onJob, new AbortController().signal, 5, socket);
    (await nextSocket(sockets, 1)).refuse();
    await done;
    expect(paths(requests)).toEqual([
      "/api/v1/generate/j1",
      "/api/v1/generate/j1/events",
      "/api/v1/generate/j1",
      "/api/v1/generate/j1",
      "/api/v1/generate/j1",
    ]);
    expect(seen.map((j) => `${j.status}:${j.step}`)).toEqual(["running:1", "running:1", "running:2", "completed:4"]);
    expect(console.warn).toHaveBeenCalledWith("job events stream unavailable, polling instead", expect.anything());
  });

  it("moves to SSE when the socket drops, and back to the socket when it reconnects", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    let stored = running;
    let stream: Request | null = null;
    const requests = stubGateway({
      "GET /api/v1/generate/j1": () => json(stored),
      "GET /api/v1/generate/j1/events": (request) => {
        stream = request;
        // An event stream that stays open, as the gateway's does while the job runs, and fails on abort as
        // a browser's fetch body does.
        return new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode(sse({ type: "progress", job_id: "j1", step: 2, total: 4, progress: 50 })));
              request.signal.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
            },
          }),
        );
      },
    });
    const { sockets, socket, seen, onJob } = setup({ backoffMs: 20 });
    const done = watchJob("j1", onJob, new AbortController().signal, 5, socket);
    const first = await nextSocket(sockets, 1);
    first.accept();
    await vi.waitFor(() => expect(first.subscribed()).toEqual(["j1"]));
    first.push(statusFrame(running));
    first.drop();
    await vi.waitFor(() => expect(seen.at(-1)?.step).toBe(2));
    expect(stream).not.toBeNull();
    // The reconnect, after the backoff: the stream is closed and the job followed on the new socket.
    const second = await nextSocket(sockets, 2);
    second.accept();
    await vi.waitFor(() => expect(second.subscribed()).toEqual(["j1"]));
    expect(stream!.signal.aborted).toBe(true);
    stored = completed;
    second.push(statusFrame(completed));
    await done;
    expect(seen.map((j) => `${j.status}:${j.step}`)).toEqual(["running:1", "running:1", "running:2", "completed:4", "completed:4"]);
    expect(paths(requests).filter((p) => p.endsWith("/events"))).toHaveLength(1);
  });

  it("a job the open socket refuses to follow goes to SSE while the socket stays up for others", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const requests = stubGateway({
      "GET /api/v1/generate/j1": () => json(running),
      "GET /api/v1/generate/j1/events": () => new Response(sse(statusFrame(completed))),
    });
    const { sockets, socket, onJob } = setup();
    const done = watchJob("j1", onJob, new AbortController().signal, 5, socket);
    const ws = await nextSocket(sockets, 1);
    ws.accept();
    await vi.waitFor(() => expect(ws.subscribed()).toEqual(["j1"]));
    ws.push({ type: "error", job_id: "j1", error: { code: "internal", message: "following the job failed" } });
    await done;
    expect(paths(requests)).toContain("/api/v1/generate/j1/events");
    expect(ws.subscribed()).toEqual(["j1"]);
    expect(socket.state).toBe("open");
  });

  it("two watched jobs share one socket; stopping a watch unsubscribes its job", async () => {
    const jobs: Record<string, Job> = { j1: running, j2: { ...running, id: "j2" } };
    stubGateway({
      "GET /api/v1/generate/j1": () => json(jobs.j1),
      "GET /api/v1/generate/j2": () => json(jobs.j2),
    });
    const { sockets, socket } = setup();
    const first = new AbortController();
    const second = new AbortController();
    const watching = [watchJob("j1", () => undefined, first.signal, 5, socket), watchJob("j2", () => undefined, second.signal, 5, socket)];
    const ws = await nextSocket(sockets, 1);
    ws.accept();
    await vi.waitFor(() => expect(ws.subscribed()).toEqual(["j1", "j2"]));
    first.abort();
    await watching[0];
    expect(ws.sent.at(-1)).toEqual({ type: "unsubscribe", job_ids: ["j1"] });
    ws.push({ type: "status", job_id: "j2", status: "completed", terminal: true, job: { ...completed, id: "j2" } });
    jobs.j2 = { ...completed, id: "j2" };
    await watching[1];
    expect(sockets.made).toHaveLength(1);
  });
});
