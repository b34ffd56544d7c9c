"use client";
import { useCallback, useEffect, useRef, useState } from "react";

import type { GalleryImage } from "@/api/client";

import { AuthImage, useImageSrc } from "./AuthImage";

export interface LightboxActions {
  onReuseSettings: (image: GalleryImage) => void;
  onReuseSeed: (image: GalleryImage) => void;
  onDelete: (image: GalleryImage) => void;
  /** The image becomes the Image tab's input (image-to-image, inpainting). */
  onSendToImage?: (image: GalleryImage) => void;
}

export function imageFileName(image: GalleryImage): string {
  return `ablerefusal-${image.job_id.slice(0, 8)}-${image.index}-${image.seed}.png`;
}

function Download({ image }: { image: GalleryImage }) {
  const href = useImageSrc(image.image_url);
  return (
    <a className="button" href={href ?? undefined} download={imageFileName(image)} aria-disabled={!href}>
      Download
    </a>
  );
}

/**
 * One image of a list, large, with its parameters beside it. ←/→ move through the list, Esc closes (the
 * dialog's own behaviour), "Zoom to 100 %" shows the pixels at their size, scrollable.
 */
export function Lightbox(props: {
  images: GalleryImage[];
  index: number | null;
  onIndex: (index: number | null) => void;
  actions: LightboxActions;
}) {
  const { images, index, onIndex, actions } = props;
  const dialog = useRef<HTMLDialogElement>(null);
  const [zoom, setZoom] = useState(false);
  const [copied, setCopied] = useState<"idle" | "done" | "failed">("idle");
  const image = index === null ? null : (images[index] ?? null);
  // Zoom and the copy label belong to the image shown: reset whenever it changes (←/→, or closed and another
  // opened), during render rather than in an effect so the old state is never painted for the new image. Keyed by
  // job and index, so a refetch of the same page (new objects, same images) keeps them.
  const shownKey = image ? `${image.job_id}/${image.index}` : null;
  const [lastKey, setLastKey] = useState(shownKey);
  if (shownKey !== lastKey) {
    setLastKey(shownKey);
    setZoom(false);
    setCopied("idle");
  }

  useEffect(() => {
    const el = dialog.current;
    if (!el) return;
    if (image && !el.open) el.showModal?.();
    if (!image && el.open) el.close?.();
  }, [image]);

  const move = useCallback(
    (by: number) => {
      if (index === null || images.length === 0) return;
      onIndex(Math.min(images.length - 1, Math.max(0, index + by)));
    },
    [index, images.length, onIndex],
  );

  // On the window, not the dialog: pressing "Next" onto the last image disables that button and focus falls
  // to the body, where the dialog would no longer hear the keys.
  const open = image !== null;
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      // Arrow keys belong to a focused text field or select.
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement) return;
      const by = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (by === 0) return;
      e.preventDefault();
      move(by);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [open, move]);
  const copy = async () => {
    if (!image) return;
    try {
      await navigator.clipboard.writeText(image.infotext);
      setCopied("done");
    } catch {
      setCopied("failed");
    }
  };

  return (
    <dialog ref={dialog} className="lightbox gallery-lightbox" aria-label="Image viewer" onClose={() => onIndex(null)}>
      {image && index !== null ? (
        <div className="lightbox-body">
          <div className={`lightbox-image${zoom ? " zoomed" : ""}`} data-testid="lightbox-image">
            <AuthImage src={image.image_url} alt={`${image.prompt} (seed ${image.seed})`} />
          </div>
          <aside className="lightbox-side">
            <p className="muted" data-testid="lightbox-position">
              {index + 1} of {images.length}
            </p>
            <p className="job-prompt">{image.prompt}</p>
            <dl className="params">
              <dt>Seed</dt>
              <dd data-testid="lightbox-seed">{image.seed}</dd>
              <dt>Size</dt>
              <dd>
                {image.width}×{image.height}
              </dd>
              <dt>Steps</dt>
              <dd>{image.steps}</dd>
              <dt>CFG</dt>
              <dd>{image.cfg_scale}</dd>
              <dt>Sampler</dt>
              <dd>{image.sampler}</dd>
              <dt>Model</dt>
              <dd>{image.model ?? "default"}</dd>
              {image.negative_prompt ? (
                <>
                  <dt>Negative</dt>
                  <dd>{image.negative_prompt}</dd>
                </>
              ) : null}
            </dl>
            <div className="actions">
              <button type="button" onClick={() => move(-1)} disabled={index === 0} aria-label="Previous image">
                ← Previous
              </button>
              <button type="button" onClick={() => move(1)} disabled={index === images.length - 1} aria-label="Next image">
                Next →
              </button>
              <button type="button" aria-pressed={zoom} onClick={() => setZoom(!zoom)}>
                {zoom ? "Fit to window" : "Zoom to 100 %"}
              </button>
            </div>
            <div className="actions">
              <Download image={image} />
              <button type="button" onClick={copy} disabled={!image.infotext}>
                {copied === "done" ? "Copied" : copied === "failed" ? "Copy failed" : "Copy parameters"}
              </button>
              <button type="button" onClick={() => actions.onReuseSettings(image)}>
                Reuse settings
              </button>
              <button type="button" onClick={() => actions.onReuseSeed(image)}>
                Reuse seed
              </button>
              {actions.onSendToImage ? (
                <button type="button" onClick={() => actions.onSendToImage?.(image)}>
                  Send to image
                </button>
              ) : null}
              <button type="button" className="danger" onClick={() => actions.onDelete(image)}>
                Delete
              </button>
            </div>
            <form method="dialog">
              <button type="submit">Close</button>
            </form>
          </aside>
        </div>
      ) : null}
    </dialog>
  );
}
