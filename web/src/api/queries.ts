// Reads and writes of the gateway through TanStack Query: polling, caching (each screen shows the last good
// data at once when it is opened again), request de-duplication, and invalidation after every change.
// Following one job stays in watch.ts: it is a stream, not a cached read.
import { keepPreviousData, QueryClient, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import {
  api,
  ApiFailure,
  asFailure,
  authHeaders,
  failureFrom,
  unwrap,
  type GenerateRequest,
  type Job,
  type JobStatus,
  type PngInfoAnswer,
  type ReadyResponse,
  type Schemas,
} from "./client";

declare module "@tanstack/react-query" {
  interface Register {
    // Every query and mutation below throws ApiFailure (asFailure wraps anything else).
    defaultError: ApiFailure;
  }
}

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      // A failed read shows its message next to the last good data at once; the next poll is the retry.
      queries: { retry: false },
      mutations: { retry: false },
    },
  });
}

export const queryKeys = {
  models: ["models"] as const,
  samplers: ["samplers"] as const,
  ready: ["ready"] as const,
  queue: ["queue"] as const,
  history: ["history"] as const,
  gallery: ["gallery"] as const,
};

/** Runs one call, turning whatever it throws into ApiFailure (an abort stays an abort: TanStack expects it). */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw asFailure(err);
  }
}

export function useModels() {
  return useQuery({
    queryKey: queryKeys.models,
    queryFn: ({ signal }) => call(() => unwrap(api.GET("/api/v1/models", { signal }))),
    refetchInterval: 10_000,
  });
}

export function useSamplers() {
  return useQuery({
    queryKey: queryKeys.samplers,
    queryFn: ({ signal }) => call(async () => (await unwrap(api.GET("/api/v1/samplers", { signal }))).samplers),
    // The sampler table is part of the gateway's code: it changes only with a new version.
    staleTime: Infinity,
  });
}

/** /ready answers 503 with the same body when not ready: both are a status to show, not an error. */
async function loadReady(signal: AbortSignal): Promise<ReadyResponse> {
  let result;
  try {
    result = await api.GET("/api/v1/ready", { signal });
  } catch {
    throw new ApiFailure("Cannot reach the gateway (network error).", null, "network");
  }
  if (result.data) return result.data;
  if (result.response.status === 503 && result.error && "ready" in result.error) return result.error;
  throw failureFrom(result.response, result.error);
}

export function useReady() {
  return useQuery({ queryKey: queryKeys.ready, queryFn: ({ signal }) => call(() => loadReady(signal)), refetchInterval: 5000 });
}

export function useQueue() {
  return useQuery({
    queryKey: queryKeys.queue,
    queryFn: ({ signal }) => call(() => unwrap(api.GET("/api/v1/queue", { signal }))),
    refetchInterval: 1500,
  });
}

export const HISTORY_PAGE_SIZE = 10;

export function useHistory(offset: number, status: JobStatus | "") {
  return useQuery({
    queryKey: [...queryKeys.history, { offset, status }],
    queryFn: ({ signal }) =>
      call(() =>
        unwrap(
          api.GET("/api/v1/generate", {
            params: { query: { offset, limit: HISTORY_PAGE_SIZE, ...(status ? { status } : {}) } },
            signal,
          }),
        ),
      ),
    refetchInterval: 5000,
    // Paging or filtering keeps the current page on screen until the next one arrives.
    placeholderData: keepPreviousData,
  });
}

/** After a job changes, every list that shows jobs is re-read. */
function useInvalidateJobs() {
  const client = useQueryClient();
  return () =>
    Promise.all([
      client.invalidateQueries({ queryKey: queryKeys.queue }),
      client.invalidateQueries({ queryKey: queryKeys.history }),
      client.invalidateQueries({ queryKey: queryKeys.gallery }),
    ]);
}

export function useSubmitJob() {
  const invalidate = useInvalidateJobs();
  return useMutation({
    mutationFn: (body: GenerateRequest) => call(() => unwrap(api.POST("/api/v1/generate", { body }))),
    onSuccess: invalidate,
  });
}

export function useCancelJob() {
  const invalidate = useInvalidateJobs();
  return useMutation({
    mutationFn: (id: string): Promise<Job> =>
      call(() => unwrap(api.POST("/api/v1/generate/{job_id}/cancel", { params: { path: { job_id: id } } }))),
    onSettled: invalidate,
  });
}

export function useDeleteJob() {
  const invalidate = useInvalidateJobs();
  return useMutation({
    mutationFn: (id: string) => call(() => unwrap(api.DELETE("/api/v1/generate/{job_id}", { params: { path: { job_id: id } } }))),
    onSettled: invalidate,
  });
}

export const GALLERY_PAGE_SIZE = 100;

export interface GalleryFilter {
  offset: number;
  model: string;
  q: string;
}

export function useGallery({ offset, model, q }: GalleryFilter) {
  return useQuery({
    queryKey: [...queryKeys.gallery, { offset, model, q }],
    queryFn: ({ signal }) =>
      call(() =>
        unwrap(
          api.GET("/api/v1/gallery", {
            params: { query: { offset, limit: GALLERY_PAGE_SIZE, ...(model ? { model } : {}), ...(q ? { q } : {}) } },
            signal,
          }),
        ),
      ),
    refetchInterval: 10_000,
    placeholderData: keepPreviousData,
  });
}

/** Deletes several finished jobs with their images in one request (all or nothing). */
export function useDeleteJobs() {
  const invalidate = useInvalidateJobs();
  return useMutation({
    mutationFn: (jobIds: string[]) => call(() => unwrap(api.POST("/api/v1/gallery/delete", { body: { job_ids: jobIds } }))),
    onSettled: invalidate,
  });
}

export interface ImageRef {
  job_id: string;
  index: number;
}

/** The zip of several images as a blob (fetched with the API key, which a plain link could not send). */
export async function fetchZip(images: ImageRef[]): Promise<Blob> {
  let response: Response;
  try {
    response = await fetch("/api/v1/gallery/zip", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ images }),
    });
  } catch {
    throw new ApiFailure("Cannot reach the gateway (network error).", null, "network");
  }
  if (!response.ok) throw failureFrom(response, await response.json().catch(() => null));
  return response.blob();
}

/** Reads the generation parameters of an image file in the gateway (the parser A1111's API uses too). */
export function usePngInfo() {
  return useMutation({
    mutationFn: (imageBase64: string): Promise<PngInfoAnswer> =>
      call(() => unwrap(api.POST("/api/v1/png-info", { body: { image: imageBase64 } }))),
  });
}

export type Upload = Schemas["Upload"];

/** Stores an input image in the gateway (POST /uploads, multipart field `file`); its id, size and URL. */
export async function uploadImage(image: Blob, name = "image.png"): Promise<Upload> {
  const form = new FormData();
  form.append("file", image, name);
  let response: Response;
  try {
    response = await fetch("/api/v1/uploads", { method: "POST", headers: authHeaders(), body: form });
  } catch {
    throw new ApiFailure("Cannot reach the gateway (network error).", null, "network");
  }
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) throw failureFrom(response, body);
  return body as Upload;
}

/** The bytes of an image the gateway serves (an output, an upload), fetched with the API key. */
export async function fetchImage(url: string): Promise<Blob> {
  let response: Response;
  try {
    response = await fetch(url, { headers: authHeaders() });
  } catch {
    throw new ApiFailure("Cannot reach the gateway (network error).", null, "network");
  }
  if (!response.ok) throw failureFrom(response, await response.json().catch(() => null));
  return response.blob();
}
