"use client";
// ControlNet units: each an image (uploaded at once), a preprocessor with its preview (the control map a worker
// makes of the image), a ControlNet model of the job model's family, weight and the steps it acts on.
import { useState } from "react";

import { useDetect, useModelsOfKind, usePreprocessors } from "@/api/adapters";
import { asFailure, type ApiFailure } from "@/api/client";
import { uploadImage } from "@/api/queries";
import { NEW_UNIT, type ControlMode, type ControlNetForm } from "@/lib/adapters";

import { AuthImage } from "./AuthImage";
import { ErrorNotice } from "./Notice";

const MAX_UNITS = 4;
const CONTROL_MODES: { id: ControlMode; name: string }[] = [
  { id: "balanced", name: "Balanced" },
  { id: "prompt", name: "My prompt is more important" },
  { id: "controlnet", name: "ControlNet is more important" },
];

export interface ControlNetUnitsProps {
  units: ControlNetForm[];
  onUnits: (units: ControlNetForm[]) => void;
  /** The job model's family: the model list shows ControlNets of that family. */
  family: string | null;
  /** The form's error for the units (the gateway names them `controlnets.N.field`). */
  error?: string;
}

function Unit(props: {
  index: number;
  unit: ControlNetForm;
  onUnit: (unit: ControlNetForm) => void;
  onRemove: () => void;
  family: string | null;
}) {
  const { index, unit, onUnit, onRemove, family } = props;
  const models = useModelsOfKind("controlnet");
  const preprocessors = usePreprocessors();
  const detect = useDetect();
  const [uploading, setUploading] = useState(false);
  const [uploadError, setUploadError] = useState<ApiFailure | null>(null);
  const set = <K extends keyof ControlNetForm>(key: K, value: ControlNetForm[K]) => onUnit({ ...unit, [key]: value });
  const id = (field: string) => `controlnet-${index}-${field}`;

  const pick = async (file: File | undefined) => {
    if (!file) return;
    setUploading(true);
    setUploadError(null);
    detect.reset();
    try {
      const upload = await uploadImage(file, file.name);
      onUnit({ ...unit, image: { id: upload.id, url: upload.url } });
    } catch (err) {
      setUploadError(asFailure(err));
    } finally {
      setUploading(false);
    }
  };
  const preview = () => {
    if (unit.image) detect.mutate({ image: unit.image.id, preprocessor: unit.preprocessor, processor_res: 512, store: false });
  };
  const usable = (models.data ?? []).filter((m) => !family || m.family === family);
  const runnable = (preprocessors.data ?? []).filter((p) => p.available);

  return (
    <fieldset className="mode-fields controlnet-unit" data-testid={`controlnet-unit-${index}`}>
      <legend>ControlNet unit {index + 1}</legend>
      <div className="field">
        <label htmlFor={id("image")}>Control image</label>
        <input id={id("image")} type="file" accept="image/png,image/jpeg,image/webp" onChange={(e) => void pick(e.target.files?.[0])} disabled={uploading} />
      </div>
      <ErrorNotice error={uploadError} title="Control image" />
      <div className="controlnet-images">
        {unit.image ? <AuthImage src={unit.image.url} alt={`Control image ${index + 1}`} className="controlnet-thumb" /> : <p className="muted">No image yet: the unit is not sent until it has one and a model.</p>}
        {detect.data ? (
          // eslint-disable-next-line @next/next/no-img-element -- a data: URL the worker made
          <img src={`data:image/png;base64,${detect.data.image}`} alt={`Preprocessor preview ${index + 1}`} className="controlnet-thumb" data-testid={`controlnet-${index}-preview`} />
        ) : null}
      </div>
      <div className="row">
        <div className="field">
          <label htmlFor={id("preprocessor")}>Preprocessor</label>
          <select id={id("preprocessor")} value={unit.preprocessor} onChange={(e) => { detect.reset(); set("preprocessor", e.target.value); }}>
            {runnable.some((p) => p.id === unit.preprocessor) ? null : <option value={unit.preprocessor}>{unit.preprocessor}</option>}
            {runnable.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        <button type="button" onClick={preview} disabled={!unit.image || detect.isPending}>
          {detect.isPending ? "Previewing…" : "Preview"}
        </button>
      </div>
      <ErrorNotice error={detect.error} title="Preview" />
      <ErrorNotice error={preprocessors.error} title="Preprocessors" />
      <div className="field">
        <label htmlFor={id("model")}>ControlNet model</label>
        <select id={id("model")} value={unit.model} onChange={(e) => set("model", e.target.value)}>
          <option value="">Choose…</option>
          {unit.model && !usable.some((m) => m.id === unit.model) ? <option value={unit.model}>{unit.model}</option> : null}
          {usable.map((m) => (
            <option key={m.id} value={m.id}>
              {m.id}
            </option>
          ))}
        </select>
      </div>
      <ErrorNotice error={models.error} title="ControlNet models" />
      <div className="slider">
        <label htmlFor={id("weight")}>Weight</label>
        <input id={id("weight")} type="range" min={0} max={2} step={0.05} value={unit.weight} onChange={(e) => set("weight", e.target.valueAsNumber)} />
        <output htmlFor={id("weight")}>{unit.weight.toFixed(2)}</output>
      </div>
      <div className="row">
        <div className="field">
          <label htmlFor={id("start")}>Start</label>
          <input id={id("start")} type="number" min={0} max={1} step={0.05} value={unit.guidance_start} onChange={(e) => set("guidance_start", e.target.valueAsNumber)} />
        </div>
        <div className="field">
          <label htmlFor={id("end")}>End</label>
          <input id={id("end")} type="number" min={0} max={1} step={0.05} value={unit.guidance_end} onChange={(e) => set("guidance_end", e.target.valueAsNumber)} />
        </div>
      </div>
      <div className="field">
        <label htmlFor={id("mode")}>Control mode</label>
        <select id={id("mode")} value={unit.control_mode} onChange={(e) => set("control_mode", e.target.value as ControlMode)}>
          {CONTROL_MODES.map((m) => (
            <option key={m.id} value={m.id}>
              {m.name}
            </option>
          ))}
        </select>
      </div>
      <button type="button" onClick={onRemove}>
        Remove unit {index + 1}
      </button>
    </fieldset>
  );
}

export function ControlNetUnits({ units, onUnits, family, error }: ControlNetUnitsProps) {
  return (
    <div className="controlnet-units">
      {units.map((unit, i) => (
        <Unit
          key={i}
          index={i}
          unit={unit}
          family={family}
          onUnit={(next) => onUnits(units.map((u, j) => (j === i ? next : u)))}
          onRemove={() => onUnits(units.filter((_, j) => j !== i))}
        />
      ))}
      {error ? (
        <p className="field-error" id="controlnets" tabIndex={-1} data-testid="error-controlnets">
          ControlNet: {error}
        </p>
      ) : null}
      <button type="button" onClick={() => onUnits([...units, NEW_UNIT])} disabled={units.length >= MAX_UNITS}>
        Add ControlNet unit
      </button>
    </div>
  );
}
