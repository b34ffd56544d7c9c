// For unit tests only: a GenerateRequest with every field the gateway defaults filled from openapi.json, so
// fixtures name only what they test and stay valid when the gateway adds a defaulted field.
import spec from "../../openapi.json";

import type { GenerateRequest } from "@/api/client";

const schemas = spec.components.schemas as unknown as Record<string, { properties: Record<string, { default?: unknown }> }>;
const properties = schemas["GenerateRequest"]?.properties ?? {};
const defaults = Object.fromEntries(Object.entries(properties).flatMap(([key, p]) => ("default" in p ? [[key, p.default]] : [])));

export function makeRequest(fields: Partial<GenerateRequest> & { prompt: string }): GenerateRequest {
  return { ...(defaults as Omit<GenerateRequest, "prompt">), ...fields };
}
