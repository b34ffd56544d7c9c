// The form checks its values by the same rules the gateway enforces, read from the gateway's own OpenAPI
// schema (web/openapi.json), so a rule changed in the gateway changes here without anyone copying it.
import spec from "../../openapi.json";

import type { GenerateRequest } from "@/api/client";

import type { FormParams } from "./params";

type NumericRule = { minimum?: number; maximum?: number; exclusiveMinimum?: number; multipleOf?: number; type?: string };
type FieldSchema = NumericRule & { minLength?: number; anyOf?: NumericRule[] };

const schemas = spec.components.schemas as unknown as Record<string, { properties?: Record<string, FieldSchema> }>;

function propertiesOf(name: string): Record<string, FieldSchema> {
  const schema = schemas[name] ?? schemas[`${name}-Input`];
  if (!schema?.properties) throw new Error(`openapi.json has no ${name} schema`);
  return schema.properties;
}

const SCHEMA_PROPERTIES = {
  GenerateRequest: propertiesOf("GenerateRequest"),
  HiresOptions: propertiesOf("HiresOptions"),
  OutpaintBorders: propertiesOf("OutpaintBorders"),
};
type SchemaName = keyof typeof SCHEMA_PROPERTIES;

export type RuleField = "width" | "height" | "steps" | "cfg_scale" | "seed" | "batch_size" | "priority" | "denoising_strength" | "mask_blur" | "inpaint_padding";

type Bounds = NumericRule & { minimum: number; maximum: number };

/** A numeric property's limits; a nullable one (`anyOf: [rule, null]`) gives its non-null branch. */
function schemaRule(schema: SchemaName, field: string): Bounds {
  const property = SCHEMA_PROPERTIES[schema][field];
  const numeric = property?.anyOf?.find((branch) => branch.maximum !== undefined) ?? property;
  const minimum = numeric?.minimum ?? numeric?.exclusiveMinimum;
  if (!numeric || minimum === undefined || numeric.maximum === undefined) {
    throw new Error(`openapi.json: ${schema}.${field} has no minimum/maximum`);
  }
  return { ...numeric, minimum, maximum: numeric.maximum };
}

export function rule(field: RuleField): Bounds {
  return schemaRule("GenerateRequest", field);
}

export const hiresRule = (field: "scale" | "steps" | "denoising_strength") => schemaRule("HiresOptions", field);
export const outpaintRule = (side: "left" | "right" | "top" | "bottom") => schemaRule("OutpaintBorders", side);

/**
 * Field → message. Keys are request fields, or for nested objects the form's flat name (hires_scale,
 * outpaint_left): the id of the control that shows the error.
 */
export type FieldErrors = Partial<Record<keyof GenerateRequest | keyof FormParams, string>>;
export type FieldKey = keyof FieldErrors;

function checkNumber(bounds: Bounds, value: number): string | null {
  const { minimum, maximum, multipleOf, type, exclusiveMinimum } = bounds;
  if (!Number.isFinite(value)) return "must be a number";
  if (type === "integer" && !Number.isInteger(value)) return "must be a whole number";
  if (exclusiveMinimum !== undefined && value <= exclusiveMinimum) return `must be more than ${exclusiveMinimum} and at most ${maximum}`;
  if (value < minimum || value > maximum) return `must be between ${minimum} and ${maximum}`;
  if (multipleOf && value % multipleOf !== 0) return `must be a multiple of ${multipleOf}`;
  return null;
}

// The gateway names a nested field with dots (hires.scale); the form shows it under one flat name.
const NESTED: Record<string, FieldKey> = {
  "hires.scale": "hires_scale",
  "hires.steps": "hires_steps",
  "hires.upscaler": "hires_upscaler",
  "hires.denoising_strength": "hires_denoising",
  hires: "hires",
  "outpaint.left": "outpaint_left",
  "outpaint.right": "outpaint_right",
  "outpaint.top": "outpaint_top",
  "outpaint.bottom": "outpaint_bottom",
  outpaint: "outpaint_left",
};

/** The form's key for a field the gateway named (`body.width`, `hires.scale`). */
export function formField(serverField: string): FieldKey {
  const path = serverField.replace(/^body\./, "");
  return NESTED[path] ?? (path.split(".")[0] as FieldKey);
}

/** Field → message for every value the gateway would refuse; empty when the request may be sent. */
export function validateRequest(request: GenerateRequest): FieldErrors {
  const errors: FieldErrors = {};
  const check = (key: FieldKey, bounds: Bounds, value: number | null | undefined) => {
    if (value === undefined || value === null) return;
    const message = checkNumber(bounds, value);
    if (message) errors[key] = message;
  };
  if ((request.prompt ?? "").trim() === "") errors.prompt = "is required";
  const numeric: RuleField[] = ["width", "height", "steps", "cfg_scale", "seed", "batch_size", "priority"];
  // The image settings count only where an image is used; a text job sends their defaults.
  if (request.init_image) numeric.push("denoising_strength", "mask_blur", "inpaint_padding");
  for (const field of numeric) check(field, rule(field), request[field]);
  if (request.hires) {
    check("hires_scale", hiresRule("scale"), request.hires.scale);
    check("hires_steps", hiresRule("steps"), request.hires.steps);
    check("hires_denoising", hiresRule("denoising_strength"), request.hires.denoising_strength);
  }
  if (request.outpaint) {
    for (const side of ["left", "right", "top", "bottom"] as const) check(`outpaint_${side}`, outpaintRule(side), request.outpaint[side]);
  }
  return errors;
}
