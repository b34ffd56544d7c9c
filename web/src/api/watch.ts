// Following one job: Server-Sent Events read through fetch (so the Bearer header goes along, which
// EventSource cannot send), falling back to polling GET /generate/{id} when the stream is unavailable or ends
// early. Either way the caller just receives successive Job snapshots.
import { EventSourceParserStream } from "eventsource-parser/stream";

import { api, authHeaders, failureFrom, TERMINAL, unwrap, type Job, type JobResult } from "./client";

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

/**
 * Reports snapshots of job `id` until it is terminal or `signal` aborts. SSE first; when that fails or ends
 * before the job does, polls every `pollMs`. A terminal job is re-read once so its results are complete.
 */
export async function watchJob(
  id: string,
  onJob: (job: Job) => void,
  signal: AbortSignal,
  pollMs = 1000,
): Promise<void> {
  let job = await fetchJob(id, signal);
  onJob(job);
  if (TERMINAL.has(job.status)) return;
  try {
    job = await streamEvents(id, job, onJob, signal);
  } catch (err) {
    if (signal.aborted) return;
    // A proxy that buffers or drops SSE, or an older gateway: polling still works.
    console.warn("job events stream unavailable, polling instead", err);
  }
  while (!signal.aborted) {
    job = await fetchJob(id, signal);
    onJob(job);
    if (TERMINAL.has(job.status)) return;
    await sleep(pollMs, signal);
  }
}
