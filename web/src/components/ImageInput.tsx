"use client";
import { useRef, useState, type DragEvent } from "react";

import type { ApiFailure } from "@/api/client";
import type { Upload } from "@/api/queries";
import type { MaskHistory } from "@/lib/mask";

import { MaskEditor } from "./MaskEditor";
import { ErrorNotice } from "./Notice";

const ACCEPT = "image/png,image/jpeg,image/webp";

function firstImage(files: FileList | null | undefined): File | null {
  return [...(files ?? [])].find((f) => f.type.startsWith("image/")) ?? null;
}

/**
 * The Image tab's input: drop or pick an image (it is uploaded at once, so a refused file is said at once),
 * then paint the mask over it. An image sent from a result arrives here too.
 */
export function ImageInput(props: {
  upload: Upload | null;
  busy: boolean;
  error: ApiFailure | null;
  /** The form's error for the image (none picked yet), shown at the picker and read with it. */
  fieldError?: string;
  onFile: (file: File) => void;
  onRemove: () => void;
  history: MaskHistory;
  onHistory: (history: MaskHistory) => void;
}) {
  const { upload, busy, error, fieldError, onFile, onRemove, history, onHistory } = props;
  const picker = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);

  // Handled here, so the page-wide PNG-info drop (PngInfoDrop) leaves this drop alone: it sees defaultPrevented.
  const onDragOver = (e: DragEvent) => {
    if (!e.dataTransfer.types.includes("Files")) return;
    e.preventDefault();
    setOver(true);
  };
  const onDrop = (e: DragEvent) => {
    setOver(false);
    const file = firstImage(e.dataTransfer.files);
    if (!file) return;
    e.preventDefault();
    onFile(file);
  };

  return (
    <div
      className={`image-input${over ? " drop-over" : ""}`}
      onDragOver={onDragOver}
      onDragEnter={onDragOver}
      onDragLeave={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false);
      }}
      onDrop={onDrop}
      data-testid="image-drop"
    >
      <input
        ref={picker}
        type="file"
        accept={ACCEPT}
        className="visually-hidden"
        tabIndex={-1}
        aria-hidden="true"
        data-testid="image-file"
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (file) onFile(file);
          e.target.value = ""; // the same file picked again is a new pick
        }}
      />
      <div className="actions">
        <button
          type="button"
          id="init_image"
          onClick={() => picker.current?.click()}
          disabled={busy}
          aria-describedby={fieldError ? "init_image-error" : undefined}
        >
          {upload ? "Replace image…" : "Choose image…"}
        </button>
        {upload ? (
          <button type="button" onClick={onRemove} disabled={busy}>
            Remove image
          </button>
        ) : null}
        {upload ? (
          <span className="muted" data-testid="input-size">
            {upload.width}×{upload.height}
          </span>
        ) : null}
      </div>
      {fieldError ? (
        <p className="field-error" id="init_image-error" data-testid="error-init_image">
          Image: {fieldError}
        </p>
      ) : null}
      {busy ? (
        <p role="status" className="muted">
          Uploading the image…
        </p>
      ) : null}
      <ErrorNotice error={error} title="Image not used" />
      {upload ? (
        // Keyed by the image: a new one starts with its own brush size and keyboard position.
        <MaskEditor key={upload.id} image={upload} alt="Input image" history={history} onHistory={onHistory} />
      ) : (
        <p className="drop-zone muted">Drop a PNG, JPEG or WebP image here, choose one, or use “Send to image” on any result.</p>
      )}
    </div>
  );
}
