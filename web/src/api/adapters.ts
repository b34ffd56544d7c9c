// Reads of the workers' adapter files (LoRAs, embeddings, VAEs, ControlNets) and ControlNet preprocessors, and
// the preprocessor preview, through TanStack Query like every other read (queries.ts).
import { useMutation, useQuery } from "@tanstack/react-query";

import { api, asFailure, unwrap, type ModelInfo, type Schemas } from "./client";

export type AdapterKind = "lora" | "embedding" | "vae" | "controlnet";
export type PreprocessorInfo = Schemas["PreprocessorInfo"];
export type DetectBody = Schemas["DetectBody"];
export type DetectResult = Schemas["DetectResult"];

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw asFailure(err);
  }
}

/** The ready workers' files of one kind (GET /api/v1/models?kind=); refreshed every minute. */
export function useModelsOfKind(kind: AdapterKind) {
  return useQuery({
    queryKey: ["models", kind],
    queryFn: ({ signal }): Promise<ModelInfo[]> =>
      call(async () => (await unwrap(api.GET("/api/v1/models", { params: { query: { kind } }, signal }))).models),
    refetchInterval: 60_000,
  });
}

/** The preprocessors the workers know, each with whether it runs there. */
export function usePreprocessors() {
  return useQuery({
    queryKey: ["controlnet", "preprocessors"],
    queryFn: ({ signal }): Promise<PreprocessorInfo[]> =>
      call(async () => (await unwrap(api.GET("/api/v1/controlnet/preprocessors", { signal }))).preprocessors),
    refetchInterval: 60_000,
  });
}

/** Runs a preprocessor on an uploaded image on a worker: the control map the unit would use. */
export function useDetect() {
  return useMutation({
    mutationFn: (body: DetectBody): Promise<DetectResult> => call(() => unwrap(api.POST("/api/v1/controlnet/detect", { body }))),
  });
}
