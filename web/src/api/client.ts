// The one way the UI talks to the gateway: openapi-fetch over the generated types, relative URLs (the UI is
// served by the gateway itself), the API key as a Bearer header, and one error type for every failure.
import createClient, { type Middleware } from "openapi-fetch";

import { getApiKey } from "@/lib/storage";

import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Job = Schemas["Job"];
export type JobStatus = Schemas["JobStatus"];
export type JobResult = Schemas["JobResult"];
export type GenerateRequest = Schemas["GenerateRequest"];
export type FieldError = Schemas["FieldError"];
export type ModelInfo = Schemas["ModelInfo"];
export type ReadyResponse = Schemas["ReadyResponse"];
export type QueueStatus = Schemas["QueueStatus"];
export type JobPage = Schemas["JobPage"];
export type SamplerInfo = Schemas["SamplerInfo"];
export type GalleryImage = Schemas["GalleryImage"];
export type GalleryPage = Schemas["GalleryPage"];
export type PngInfoAnswer = Schemas["PngInfoAnswer"];

export const TERMINAL: ReadonlySet<JobStatus> = new Set<JobStatus>(["completed", "failed", "cancelled", "timed_out"]);

/** Any failed call: `status` is null when the request never got an answer (network down, gateway gone). */
export class ApiFailure extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string,
    readonly details: FieldError[] = [],
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
    this.name = "ApiFailure";
  }
}

export function authHeaders(): Record<string, string> {
  const key = getApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

const auth: Middleware = {
  onRequest({ request }) {
    const key = getApiKey();
    if (key) request.headers.set("Authorization", `Bearer ${key}`);
    return request;
  },
};

export const api = createClient<paths>({
  // The page's own origin (the UI is served by the gateway itself), spelled out because a Request needs an
  // absolute URL outside a browser (the unit tests).
  baseUrl: typeof window === "undefined" ? "" : window.location.origin,
  // Looked up per call rather than captured at import, so whatever fetch the page has at the time is used.
  fetch: (request) => globalThis.fetch(request),
});
api.use(auth);

function isEnvelope(body: unknown): body is Schemas["ErrorEnvelope"] {
  return typeof body === "object" && body !== null && "error" in body && typeof body.error === "object";
}

/** Turns an error answer into an ApiFailure whose message a person can act on. */
export function failureFrom(response: Response, body: unknown): ApiFailure {
  const retry = Number(response.headers.get("Retry-After"));
  const retryAfterS = Number.isFinite(retry) && retry > 0 ? retry : null;
  if (isEnvelope(body)) {
    const { code, message, details, available } = body.error;
    const hint = available?.length ? ` (available: ${available.join(", ")})` : "";
    let text = message + hint;
    if (response.status === 429) text = `The queue is full: ${message}${retryAfterS ? `. Try again in ${retryAfterS} s.` : ""}`;
    if (response.status === 401) text = `${message}. Set your API key under Settings.`;
    return new ApiFailure(text, response.status, code, details ?? [], retryAfterS);
  }
  return new ApiFailure(`The gateway answered ${response.status} ${response.statusText}`.trim(), response.status, "http", [], retryAfterS);
}

/** Any thrown value as an ApiFailure, so every screen shows one kind of error. */
export function asFailure(err: unknown): ApiFailure {
  if (err instanceof ApiFailure) return err;
  return new ApiFailure(String(err), null, "client");
}

/** Awaits an openapi-fetch call and gives back its data, or throws ApiFailure (network errors included). */
export async function unwrap<D>(call: Promise<{ data?: D; error?: unknown; response: Response }>): Promise<D> {
  let result: { data?: D; error?: unknown; response: Response };
  try {
    result = await call;
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiFailure(
      "Cannot reach the gateway (network error). Check that it is running; nothing you typed was lost.",
      null,
      "network",
    );
  }
  if (!result.response.ok) throw failureFrom(result.response, result.error);
  return result.data as D;
}
