"use client";
import { useMemo } from "react";

import type { ApiFailure, Job, JobResult } from "@/api/client";
import { uploadImage, type Upload } from "@/api/queries";
import { maskPng, rasterize, type MaskHistory } from "@/lib/mask";
import type { FormParams } from "@/lib/params";

import { GeneratePanel } from "./GeneratePanel";
import { ImageInput } from "./ImageInput";

/** The Image tab's input image as the app holds it (it outlives tab switches; the upload outlives reloads). */
export interface ImageInputState {
  upload: Upload | null;
  busy: boolean;
  error: ApiFailure | null;
}

/**
 * Image to image, inpainting and outpainting: the Generate form with the image settings, the input image with
 * its mask editor, and the output beside it. The painted mask is uploaded as a PNG when the job is submitted.
 */
export function ImagePanel(props: {
  params: FormParams;
  setParams: (p: FormParams) => void;
  jobId: string | null;
  onJob: (id: string) => void;
  input: ImageInputState;
  onFile: (file: File) => void;
  onRemove: () => void;
  mask: MaskHistory;
  onMask: (history: MaskHistory) => void;
  onSendToImage: (job: Job, result: JobResult) => void;
}) {
  const { input, onFile, onRemove, mask, onMask, ...panel } = props;
  const upload = input.upload;
  // Replayed only when the mask changes (one stroke), not on every render.
  const raster = useMemo(() => (upload ? rasterize(upload.width, upload.height, mask.ops) : null), [upload, mask.ops]);
  const hasMask = raster !== null && !raster.isEmpty();

  const prepare = async () => {
    // Nothing painted: plain image-to-image, which takes no mask.
    if (!raster || !hasMask) return { mask: null };
    const stored = await uploadImage(await maskPng(raster), "mask.png");
    return { mask: stored.id };
  };

  return (
    <GeneratePanel
      {...panel}
      image={{
        initImage: upload?.id ?? null,
        hasMask,
        prepare,
        input: (errors) => (
          <ImageInput
            upload={upload}
            busy={input.busy}
            error={input.error}
            fieldError={errors.init_image ?? errors.mask}
            onFile={onFile}
            onRemove={onRemove}
            history={mask}
            onHistory={onMask}
          />
        ),
      }}
    />
  );
}
