"use client";
import { useEffect, useRef, useState } from "react";

import type { PngInfoAnswer } from "@/api/client";
import { usePngInfo } from "@/api/queries";

import { ErrorNotice } from "./Notice";

/** The file's bytes as base64 (what /png-info takes). */
export function fileToBase64(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error ?? new Error("could not read the file"));
    reader.readAsDataURL(file);
  });
}

function imageFile(files: FileList | null | undefined): File | null {
  return [...(files ?? [])].find((f) => f.type.startsWith("image/")) ?? null;
}

const SOURCE_LABEL: Record<PngInfoAnswer["source"], string> = {
  a1111: "A1111-style parameters",
  comfyui: "ComfyUI workflow",
  none: "No generation parameters",
};

/**
 * Drop or paste an image anywhere on the page: the gateway reads its generation parameters (A1111 infotext or
 * a ComfyUI graph) and a dialog shows them, with one button to put them in the Generate form.
 */
export function PngInfoDrop({ onFill }: { onFill: (parameters: Record<string, string>) => void }) {
  const pngInfo = usePngInfo();
  const { mutate } = pngInfo;
  const dialog = useRef<HTMLDialogElement>(null);
  const [dragging, setDragging] = useState(false);
  const [name, setName] = useState("");

  useEffect(() => {
    const read = (file: File) => {
      setName(file.name || "pasted image");
      if (!dialog.current?.open) dialog.current?.showModal?.();
      fileToBase64(file).then(mutate, () => undefined);
    };
    // A drop target of its own (the Image tab's input) takes its drops first and marks them handled.
    const onDragOver = (e: DragEvent) => {
      if (e.defaultPrevented) {
        setDragging(false);
        return;
      }
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault(); // without this the browser opens the file instead of dropping it here
      setDragging(true);
    };
    const onDragLeave = (e: DragEvent) => {
      if (e.relatedTarget === null) setDragging(false);
    };
    const onDrop = (e: DragEvent) => {
      const file = imageFile(e.dataTransfer?.files);
      setDragging(false);
      if (!file || e.defaultPrevented) return;
      e.preventDefault();
      read(file);
    };
    const onPaste = (e: ClipboardEvent) => {
      const file = imageFile(e.clipboardData?.files);
      if (!file) return; // a text paste goes where it was meant to
      e.preventDefault();
      read(file);
    };
    window.addEventListener("dragover", onDragOver);
    window.addEventListener("dragleave", onDragLeave);
    window.addEventListener("drop", onDrop);
    window.addEventListener("paste", onPaste);
    return () => {
      window.removeEventListener("dragover", onDragOver);
      window.removeEventListener("dragleave", onDragLeave);
      window.removeEventListener("drop", onDrop);
      window.removeEventListener("paste", onPaste);
    };
  }, [mutate]);

  const answer = pngInfo.data;
  const entries = Object.entries(answer?.parameters ?? {});
  return (
    <>
      {dragging ? (
        <div className="drop-hint" aria-hidden="true">
          Drop an image to read its parameters
        </div>
      ) : null}
      <dialog ref={dialog} className="lightbox png-info" aria-labelledby="png-info-heading">
        <h2 id="png-info-heading">Image parameters</h2>
        <p className="muted">{name}</p>
        {pngInfo.isPending ? <p role="status">Reading…</p> : null}
        <ErrorNotice error={pngInfo.error} title="Could not read the image" />
        {answer ? (
          <>
            <p data-testid="png-info-source">{SOURCE_LABEL[answer.source]}</p>
            {entries.length > 0 ? (
              <dl className="params" data-testid="png-info-parameters">
                {entries.map(([key, value]) => (
                  <div key={key} className="param-row">
                    <dt>{key}</dt>
                    <dd>{value}</dd>
                  </div>
                ))}
              </dl>
            ) : null}
          </>
        ) : null}
        <form method="dialog" className="actions">
          {entries.length > 0 ? (
            <button type="submit" className="primary" onClick={() => onFill(answer?.parameters ?? {})}>
              Fill the form
            </button>
          ) : null}
          <button type="submit">Close</button>
        </form>
      </dialog>
    </>
  );
}
