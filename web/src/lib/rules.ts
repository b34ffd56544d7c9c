// The form checks its values by the same rules the gateway enforces, read from the gateway's own OpenAPI
// schema (web/openapi.json), so a rule changed in the gateway changes here without anyone copying it.
import spec from "../../openapi.json";

import type { GenerateRequest } from "@/api/client";

type NumericRule = { minimum?: number; maximum?: number; multipleOf?: number; type?: string };
type FieldSchema = NumericRule & { minLength?: number; anyOf?: NumericRule[] };

const schemas = spec.components.schemas as unknown as Record<string, { properties?: Record<string, FieldSchema> }>;
const requestSchema = schemas["GenerateRequest"] ?? schemas["GenerateRequest-Input"];
if (!requestSchema?.properties) throw new Error("openapi.json has no GenerateRequest schema");
const properties = requestSchema.properties;

export type RuleField = "width" | "height" | "steps" | "cfg_scale" | "seed" | "batch_size" | "priority";

export function rule(field: RuleField): Required<Pick<NumericRule, "minimum" | "maximum">> & NumericRule {
  const schema = properties[field];
  if (!schema || schema.minimum === undefined || schema.maximum === undefined) {
    throw new Error(`openapi.json: GenerateRequest.${field} has no minimum/maximum`);
  }
  return { ...schema, minimum: schema.minimum, maximum: schema.maximum };
}

export type FieldErrors = Partial<Record<keyof GenerateRequest, string>>;

function checkNumber(field: RuleField, value: number, errors: FieldErrors): void {
  const { minimum, maximum, multipleOf, type } = rule(field);
  if (!Number.isFinite(value)) errors[field] = "must be a number";
  else if (type === "integer" && !Number.isInteger(value)) errors[field] = "must be a whole number";
  else if (value < minimum || value > maximum) errors[field] = `must be between ${minimum} and ${maximum}`;
  else if (multipleOf && value % multipleOf !== 0) errors[field] = `must be a multiple of ${multipleOf}`;
}

/** Field → message for every value the gateway would refuse; empty when the request may be sent. */
export function validateRequest(request: GenerateRequest): FieldErrors {
  const errors: FieldErrors = {};
  if ((request.prompt ?? "").trim() === "") errors.prompt = "is required";
  const numeric: RuleField[] = ["width", "height", "steps", "cfg_scale", "seed", "batch_size", "priority"];
  for (const field of numeric) {
    const value = request[field];
    if (value !== undefined) checkNumber(field, value, errors);
  }
  return errors;
}
