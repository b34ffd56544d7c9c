// Reads and writes of the gateway through TanStack Query: polling, caching (each screen shows the last good
// data at once when it is opened again), request de-duplication, and invalidation after every change.
// Following one job stays in watch.ts: it is a stream, not a cached read.
import { keepPreviousData, QueryClient, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import { api, ApiFailure, asFailure, failureFrom, unwrap, type GenerateRequest, type Job, type JobStatus, type ReadyResponse } from "./client";

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
    Promise.all([client.invalidateQueries({ queryKey: queryKeys.queue }), client.invalidateQueries({ queryKey: queryKeys.history })]);
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
