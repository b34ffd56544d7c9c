// Following one job. First over the page's shared WebSocket (ws.ts); when the socket cannot open or drops,
// over Server-Sent Events read through fetch (so the Bearer header goes along, which EventSource cannot
// send); when that fails or ends early too, by polling GET /generate/{id}. A watch that fell back returns to
// the socket when it reconnects. Whichever way, the caller just receives successive Job snapshots: every
// transport starts a job with its snapshot, so switching loses nothing.
import { EventSourceParserStream } from "eventsource-parser/stream";

import { api, authHeaders, failureFrom, TERMINAL, unwrap, type Job, type JobResult } from "./client";
import { sharedJobSocket, type JobSocket } from "./ws";

export interface SseEvent {
  event: string;
  data: string;
}

/**
 * The Server-Sent Events of a response body, parsed by eventsource-parser (which keeps a `\r\n` that a chunk
 * boundary splits as one line ending, and handles comments, multi-line data and retry fields per the spec).
 */
export async function* sseEvents(body: ReadableStream<Uint8Array<ArrayBuffer>>): AsyncGenerator<SseEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield { event: value.event ?? "message", data: value.data };
    }
  } finally {
    // Leaving early (a terminal job, an abort) closes the connection instead of leaving it open.
    await reader.cancel().catch(() => undefined);
  }
}

function isJob(value: unknown): value is Job {
  return typeof value === "object" && value !== null && "id" in value && "status" in value && "request" in value;
}

function isResult(value: unknown): value is JobResult {
  return typeof value === "object" && value !== null && "image_url" in value && "seed" in value;
}

/**
 * The job after one SSE event of the gateway (gateway/events.py, not part of the OpenAPI schema, hence the
 * runtime checks): `status` carries the whole job; `progress`, `preview` and `image` update their part.
 */
export function applyEvent(job: Job, data: unknown): Job {
  if (typeof data !== "object" || data === null) return job;
  const event = data as Record<string, unknown>;
  if (isJob(event.job)) return event.job;
  if (isJob(event)) return event;
  const step = typeof event.step === "number" ? event.step : job.step;
  switch (event.type) {
    case "progress":
      return {
        ...job,
        // Progress can outrun the status event that says the job started.
        status: job.status === "queued" ? "running" : job.status,
        queue_position: null,
        step,
        total_steps: typeof event.total === "number" ? event.total : job.total_steps,
        progress: typeof event.progress === "number" ? event.progress : job.progress,
      };
    case "preview":
      return typeof event.image === "string" ? { ...job, step, preview: event.image } : job;
    case "image": {
      if (!isResult(event.result)) return job;
      const result = event.result;
      const others = (job.results ?? []).filter((r) => r.index !== result.index);
      return { ...job, results: [...others, result].sort((a, b) => a.index - b.index) };
    }
    default:
      return job;
  }
}

async function streamEvents(id: string, job: Job, onJob: (job: Job) => void, signal: AbortSignal): Promise<Job> {
  const response = await fetch(`/api/v1/generate/${encodeURIComponent(id)}/events`, {
    headers: { Accept: "text/event-stream", ...authHeaders() },
    signal,
  });
  if (!response.ok || !response.body) throw failureFrom(response, await response.json().catch(() => null));
  let current = job;
  for await (const event of sseEvents(response.body)) {
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      continue;
    }
    current = applyEvent(current, data);
    onJob(current);
    if (TERMINAL.has(current.status)) return current;
  }
  return current;
}

/** Waits `ms`, or less when `signal` aborts; either way its abort listener is gone when it resolves. */
export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

export function fetchJob(id: string, signal?: AbortSignal): Promise<Job> {
  return unwrap(api.GET("/api/v1/generate/{job_id}", { params: { path: { job_id: id } }, signal }));
}

/** How a watch ended its time on one transport. */
type Leg = { job: Job; reason: "terminal" | "aborted" | "lost" | "upgrade" };

/** Follows the job over the open socket until it is terminal, the socket gives it up, or `signal` aborts. */
function followOnSocket(socket: JobSocket, id: string, job: Job, onJob: (job: Job) => void, signal: AbortSignal): Promise<Leg> {
  return new Promise((resolve) => {
    let current = job;
    let settled = false;
    let stop: (() => void) | null = null;
    const finish = (reason: Leg["reason"], why?: string) => {
      if (settled) return;
      settled = true;
      stop?.();
      signal.removeEventListener("abort", aborted);
      if (why) console.warn(`job socket gave up job ${id} (${why}), using its event stream instead`);
      resolve({ job: current, reason });
    };
    const aborted = () => finish("aborted");
    stop = socket.follow(id, {
      frame(frame) {
        current = applyEvent(current, frame);
        onJob(current);
        if (TERMINAL.has(current.status)) finish("terminal");
      },
      lost: (why) => finish("lost", why),
    });
    // `lost` may come from within follow, before `stop` was known.
    if (settled) stop();
    else if (signal.aborted) finish("aborted");
    else signal.addEventListener("abort", aborted, { once: true });
  });
}

/** An AbortController that aborts with `signal`, and when the socket opens again (to leave SSE or polling). */
function untilSocketOpens(socket: JobSocket | null, signal: AbortSignal): { signal: AbortSignal; upgraded: () => boolean; done: () => void } {
  const controller = new AbortController();
  let upgraded = false;
  const abort = () => controller.abort();
  signal.addEventListener("abort", abort, { once: true });
  const stopListening =
    socket?.onOpen(() => {
      upgraded = true;
      controller.abort();
    }) ?? (() => undefined);
  return {
    signal: controller.signal,
    upgraded: () => upgraded && !signal.aborted,
    done: () => {
      stopListening();
      signal.removeEventListener("abort", abort);
    },
  };
}

/**
 * Reports snapshots of job `id` until it is terminal or `signal` aborts: over `socket` (the page's shared
 * one by default; null for none) while it is open, else SSE, else polling every `pollMs`. A terminal job is
 * re-read once so its results are complete.
 */
export async function watchJob(
  id: string,
  onJob: (job: Job) => void,
  signal: AbortSignal,
  pollMs = 1000,
  socket: JobSocket | null = sharedJobSocket(),
): Promise<void> {
  let job = await fetchJob(id, signal);
  onJob(job);
  if (TERMINAL.has(job.status)) return;
  const release = socket?.hold() ?? (() => undefined);
  let sse = true;
  // Off after the socket gave this job up, until it (re)opens: a gateway that refused to follow the job on
  // an open socket would refuse again.
  let useSocket = socket !== null;
  try {
    while (!signal.aborted && !TERMINAL.has(job.status)) {
      if (socket && useSocket && (await socket.ready(signal))) {
        const leg = await followOnSocket(socket, id, job, onJob, signal);
        job = leg.job;
        useSocket = leg.reason !== "lost";
        continue;
      }
      if (signal.aborted) return;
      const leg = untilSocketOpens(socket, signal);
      try {
        if (sse) {
          try {
            job = await streamEvents(id, job, onJob, leg.signal);
            // A stream that ends before the job does (a proxy cutting it) is not worth reopening.
            if (!TERMINAL.has(job.status) && !leg.upgraded()) sse = false;
            if (leg.upgraded()) useSocket = true;
          } catch (err) {
            if (signal.aborted) return;
            if (leg.upgraded()) useSocket = true;
            else {
              // A proxy that buffers or drops SSE, or an older gateway: polling still works.
              console.warn("job events stream unavailable, polling instead", err);
              sse = false;
            }
          }
        } else {
          job = await fetchJob(id, signal);
          onJob(job);
          // Polled, so already complete: no re-read below.
          if (TERMINAL.has(job.status)) return;
          await sleep(pollMs, leg.signal);
          if (leg.upgraded()) useSocket = true;
        }
      } finally {
        leg.done();
      }
    }
    if (signal.aborted) return;
    job = await fetchJob(id, signal);
    onJob(job);
  } finally {
    release();
  }
}
