"use client";
// The fields one tab adds to the Generate form: hires fix on the text tab, how the image and its mask are used
// on the Image tab. Values live in FormParams, so they persist, reuse and validate like every other field.
import type { ChangeEvent } from "react";

import { finalSize, OUTPAINT_SIDES, type FormParams, type InpaintingFill, type ResizeMode } from "@/lib/params";
import { hiresRule, outpaintRule, rule, type FieldErrors } from "@/lib/rules";

import { Field } from "./GenerateForm";

interface ModeFieldsProps {
  params: FormParams;
  onChange: (params: FormParams) => void;
  errors: FieldErrors;
}

type NumberKey = { [K in keyof FormParams]: FormParams[K] extends number ? K : never }[keyof FormParams];

function useSetters({ params, onChange }: ModeFieldsProps) {
  const set = <K extends keyof FormParams>(key: K, value: FormParams[K]) => onChange({ ...params, [key]: value });
  const num = (key: NumberKey) => (e: ChangeEvent<HTMLInputElement>) => set(key, e.target.valueAsNumber);
  const shown = (key: NumberKey) => (Number.isFinite(params[key]) ? params[key] : "");
  return { set, num, shown };
}

/** A 0–1 strength as a slider with its value beside it. */
function StrengthSlider(props: ModeFieldsProps & { id: "denoising_strength" | "hires_denoising"; label: string; hint: string }) {
  const { id, label, hint, params, errors } = props;
  const { num } = useSetters(props);
  const value = params[id];
  return (
    <Field id={id} label={label} error={errors[id]} hint={hint}>
      {(a11y) => (
        <div className="slider">
          <input id={id} type="range" min={0} max={1} step={0.01} value={Number.isFinite(value) ? value : 0} onChange={num(id)} {...a11y} />
          <output htmlFor={id} data-testid={`${id}-value`}>
            {Number.isFinite(value) ? value.toFixed(2) : "–"}
          </output>
        </div>
      )}
    </Field>
  );
}

export const UPSCALERS = [
  { id: "latent", name: "Latent" },
  { id: "lanczos", name: "Lanczos" },
  { id: "nearest", name: "Nearest" },
] as const;

/** Hires fix (text tab): draw at the form's size, upscale, then refine with a second, image-to-image pass. */
export function HiresFields(props: ModeFieldsProps) {
  const { params, errors } = props;
  const { set, num, shown } = useSetters(props);
  const scale = hiresRule("scale");
  const steps = hiresRule("steps");
  const size = finalSize(params, "text");
  return (
    <fieldset className="mode-fields">
      <legend>
        <label className="check">
          <input id="hires" type="checkbox" checked={params.hires} onChange={(e) => set("hires", e.target.checked)} aria-describedby="hires-hint" />
          Hires fix
        </label>
      </legend>
      <p className="hint" id="hires-hint">
        {params.hires ? `Draws at ${params.width}×${params.height}, then upscales and refines to ${size.width}×${size.height}.` : "Draw small, upscale, refine: more detail at large sizes."}
      </p>
      {params.hires ? (
        <>
          <div className="row">
            <Field id="hires_scale" label="Upscale by" error={errors.hires_scale}>
              {(a11y) => <input id="hires_scale" type="number" inputMode="decimal" min={scale.exclusiveMinimum ?? scale.minimum} max={scale.maximum} step={0.05} value={shown("hires_scale")} onChange={num("hires_scale")} {...a11y} />}
            </Field>
            <Field id="hires_upscaler" label="Upscaler" error={errors.hires_upscaler}>
              {(a11y) => (
                <select id="hires_upscaler" value={params.hires_upscaler} onChange={(e) => set("hires_upscaler", e.target.value)} {...a11y}>
                  {UPSCALERS.some((u) => u.id === params.hires_upscaler) ? null : <option value={params.hires_upscaler}>{params.hires_upscaler}</option>}
                  {UPSCALERS.map((u) => (
                    <option key={u.id} value={u.id}>
                      {u.name}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
          <div className="row">
            <Field id="hires_steps" label="Hires steps" error={errors.hires_steps} hint="0: as many as Steps">
              {(a11y) => <input id="hires_steps" type="number" inputMode="numeric" min={0} max={steps.maximum} step={1} value={shown("hires_steps")} onChange={num("hires_steps")} {...a11y} />}
            </Field>
          </div>
          <StrengthSlider {...props} id="hires_denoising" label="Hires denoising strength" hint="How much the second pass may change" />
        </>
      ) : null}
    </fieldset>
  );
}

const RESIZE_MODES: { id: ResizeMode; name: string }[] = [
  { id: "resize", name: "Just resize (stretch)" },
  { id: "crop", name: "Crop and resize (fill, cut)" },
  { id: "fill", name: "Resize and fill (fit, pad)" },
];

const FILLS: { id: InpaintingFill; name: string }[] = [
  { id: "original", name: "Original" },
  { id: "fill", name: "Fill (colours around it)" },
  { id: "latent_noise", name: "Latent noise" },
  { id: "latent_nothing", name: "Latent nothing" },
];

/** Image tab: how much of the image is redrawn, how it is fitted, how the mask is used, outpainting. */
export function ImageFields(props: ModeFieldsProps & { hasMask: boolean }) {
  const { params, errors, hasMask } = props;
  const { set, num, shown } = useSetters(props);
  const blur = rule("mask_blur");
  const padding = rule("inpaint_padding");
  const size = finalSize(params, "image");
  return (
    <>
      <fieldset className="mode-fields">
        <legend>Image to image</legend>
        <StrengthSlider {...props} id="denoising_strength" label="Denoising strength" hint="0 keeps the image, 1 redraws it from scratch" />
        <Field id="resize_mode" label="Resize mode" error={errors.resize_mode} hint="How the image is fitted to Width × Height">
          {(a11y) => (
            <select id="resize_mode" value={params.resize_mode} onChange={(e) => set("resize_mode", e.target.value as ResizeMode)} {...a11y}>
              {RESIZE_MODES.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name}
                </option>
              ))}
            </select>
          )}
        </Field>
      </fieldset>
      <fieldset className="mode-fields">
        <legend>Inpainting</legend>
        <p className="hint">{hasMask ? "The painted area is repainted; the rest stays as it is." : "Paint a mask on the image to repaint only part of it."}</p>
        <Field id="inpainting_fill" label="Masked content" error={errors.inpainting_fill}>
          {(a11y) => (
            <select id="inpainting_fill" value={params.inpainting_fill} onChange={(e) => set("inpainting_fill", e.target.value as InpaintingFill)} {...a11y}>
              {FILLS.map((f) => (
                <option key={f.id} value={f.id}>
                  {f.name}
                </option>
              ))}
            </select>
          )}
        </Field>
        <div className="row">
          <Field id="mask_blur" label="Mask blur" error={errors.mask_blur} hint="px">
            {(a11y) => <input id="mask_blur" type="number" inputMode="numeric" min={blur.minimum} max={blur.maximum} step={1} value={shown("mask_blur")} onChange={num("mask_blur")} {...a11y} />}
          </Field>
          <Field id="inpaint_padding" label="Only-masked padding" error={errors.inpaint_padding} hint="px around the mask">
            {(a11y) => (
              <input id="inpaint_padding" type="number" inputMode="numeric" min={padding.minimum} max={padding.maximum} step={1} value={shown("inpaint_padding")} onChange={num("inpaint_padding")} disabled={!params.inpaint_only_masked} {...a11y} />
            )}
          </Field>
        </div>
        <label className="check">
          <input id="inpaint_only_masked" type="checkbox" checked={params.inpaint_only_masked} onChange={(e) => set("inpaint_only_masked", e.target.checked)} />
          Only masked: work on the area around the mask at full resolution
        </label>
        <label className="check">
          <input id="mask_invert" type="checkbox" checked={params.mask_invert} onChange={(e) => set("mask_invert", e.target.checked)} />
          Repaint everything except the mask
        </label>
      </fieldset>
      <fieldset className="mode-fields">
        <legend>Outpainting</legend>
        <p className="hint" id="outpaint-hint">
          Pixels to add on each side (multiples of 8); the new border is painted. Result: {size.width}×{size.height}.
        </p>
        <div className="row outpaint-row">
          {OUTPAINT_SIDES.map((side) => {
            const key = `outpaint_${side}` as const;
            const r = outpaintRule(side);
            return (
              <Field key={side} id={key} label={side.charAt(0).toUpperCase() + side.slice(1)} error={errors[key]}>
                {(a11y) => <input id={key} type="number" inputMode="numeric" min={r.minimum} max={r.maximum} step={r.multipleOf ?? 8} value={shown(key)} onChange={num(key)} {...a11y} />}
              </Field>
            );
          })}
        </div>
      </fieldset>
    </>
  );
}
