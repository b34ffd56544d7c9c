// Following one job: Server-Sent Events read through fetch (so the Bearer header goes along, which
// EventSource cannot send), falling back to polling GET /generate/{id} when the stream is unavailable or ends
// early. Either way the caller just receives successive Job snapshots.
import { api, authHeaders, failureFrom, TERMINAL, unwrap, type Job, type JobResult } from "./client";

export interface SseEvent {
  event: string;
  data: string;
}

/** Splits complete SSE frames off `buffer`; `rest` is the unfinished tail to prepend to the next chunk. */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const normalised = buffer.replace(/\r\n?/g, "\n");
  const frames = normalised.split("\n\n");
  const rest = frames.pop() ?? "";
  const events: SseEvent[] = [];
  for (const frame of frames) {
    let event = "message";
    const data: string[] = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue; // comment / keep-alive ping
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
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
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let current = job;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return current;
    const parsed = parseSse(buffer + value);
    buffer = parsed.rest;
    for (const event of parsed.events) {
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        continue;
      }
      current = applyEvent(current, data);
      onJob(current);
      if (TERMINAL.has(current.status)) {
        await reader.cancel();
        return current;
      }
    }
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
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
