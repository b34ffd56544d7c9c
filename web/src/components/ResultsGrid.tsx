"use client";
import { useRef, useState } from "react";

import type { Job, JobResult } from "@/api/client";

import { AuthImage, useImageSrc } from "./AuthImage";

export interface ResultActions {
  onReuseSettings?: (job: Job) => void;
  onReuseSeed?: (job: Job, seed: number) => void;
  /** The image becomes the Image tab's input (image-to-image, inpainting). */
  onSendToImage?: (job: Job, result: JobResult) => void;
}

function paramsSummary(job: Job): string {
  const r = job.request;
  return `${r.width}×${r.height} · ${r.steps} steps · CFG ${r.cfg_scale} · ${r.sampler}${r.model ? ` · ${r.model}` : ""}`;
}

function fileName(job: Job, result: JobResult): string {
  return `ablerefusal-${job.id.slice(0, 8)}-${result.index}-${result.seed}.png`;
}

function DownloadLink({ job, result }: { job: Job; result: JobResult }) {
  const href = useImageSrc(result.image_url);
  return (
    <a className="button" href={href ?? undefined} download={fileName(job, result)} aria-disabled={!href}>
      Download
    </a>
  );
}

function ResultCard({ job, result, actions, onOpen }: { job: Job; result: JobResult; actions: ResultActions; onOpen: () => void }) {
  const [copied, setCopied] = useState<"idle" | "done" | "failed">("idle");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(result.infotext);
      setCopied("done");
    } catch {
      setCopied("failed");
    }
  };
  return (
    <figure className="result-card" data-testid="result">
      <button type="button" className="image-button" onClick={onOpen} aria-label={`Open image ${result.index + 1} large`}>
        <AuthImage src={result.image_url} alt={`${job.request.prompt} (seed ${result.seed})`} />
      </button>
      <figcaption>
        <span className="seed" data-testid="result-seed">
          Seed {result.seed}
        </span>
        <span className="muted">{paramsSummary(job)}</span>
        <details>
          <summary>Parameters</summary>
          <pre className="infotext">{result.infotext || JSON.stringify(job.request, null, 2)}</pre>
        </details>
        <div className="actions">
          <DownloadLink job={job} result={result} />
          {actions.onReuseSettings ? (
            <button type="button" onClick={() => actions.onReuseSettings?.(job)}>
              Reuse settings
            </button>
          ) : null}
          {actions.onReuseSeed ? (
            <button type="button" onClick={() => actions.onReuseSeed?.(job, result.seed)}>
              Reuse seed
            </button>
          ) : null}
          <button type="button" onClick={copy} disabled={!result.infotext}>
            {copied === "done" ? "Copied" : copied === "failed" ? "Copy failed" : "Copy parameters"}
          </button>
          {actions.onSendToImage ? (
            <button type="button" onClick={() => actions.onSendToImage?.(job, result)}>
              Send to image
            </button>
          ) : null}
        </div>
      </figcaption>
    </figure>
  );
}

/** The images of a job, each with its seed and parameters; any one opens large in a modal dialog. */
export function ResultsGrid({ job, actions = {} }: { job: Job; actions?: ResultActions }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [open, setOpen] = useState<JobResult | null>(null);
  const results = job.results ?? [];
  if (results.length === 0) return null;
  const show = (result: JobResult) => {
    setOpen(result);
    dialog.current?.showModal?.();
  };
  return (
    <>
      {/* One image fills the output area; several share it as tiles. */}
      <div className={results.length === 1 ? "results-grid results-single" : "results-grid"}>
        {results.map((result) => (
          <ResultCard key={result.index} job={job} result={result} actions={actions} onOpen={() => show(result)} />
        ))}
      </div>
      <dialog ref={dialog} className="lightbox" aria-label="Image" onClose={() => setOpen(null)}>
        {open ? (
          <>
            <AuthImage src={open.image_url} alt={`${job.request.prompt} (seed ${open.seed}), large`} />
            <p>
              Seed {open.seed} · {paramsSummary(job)}
            </p>
          </>
        ) : null}
        <form method="dialog" className="actions">
          {open && actions.onSendToImage ? (
            <button type="submit" onClick={() => actions.onSendToImage?.(job, open)}>
              Send to image
            </button>
          ) : null}
          <button type="submit" autoFocus>
            Close
          </button>
        </form>
      </dialog>
    </>
  );
}
