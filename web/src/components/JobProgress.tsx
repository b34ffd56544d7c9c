"use client";
import { useEffect, useState } from "react";

import type { Job } from "@/api/client";
import { etaSeconds, formatDuration, STATUS_LABEL } from "@/lib/format";

import { AuthImage } from "./AuthImage";

/** Where a job stands: queue position, or a progress bar with step x/y, ETA and the latest latent preview. */
export function JobProgress({ job }: { job: Job }) {
  const [now, setNow] = useState(() => Date.now());
  const running = job.status === "running";
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [running]);

  const eta = running ? etaSeconds(job, now) : null;
  const percent = Math.round(job.progress);
  return (
    <section className="job-progress" aria-label="Job progress" data-status={job.status}>
      <p className="job-status">
        <span className={`badge badge-${job.status}`}>{STATUS_LABEL[job.status]}</span>
        {job.status === "queued" && job.queue_position != null ? (
          <span data-testid="queue-position"> Position {job.queue_position} in the queue</span>
        ) : null}
      </p>
      {running || job.status === "completed" ? (
        <>
          <div
            className="progress"
            role="progressbar"
            aria-label="Generation progress"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={percent}
          >
            <div className="progress-fill" style={{ width: `${percent}%` }} />
          </div>
          <p className="progress-text" data-testid="progress-text">
            Step {job.step}/{job.total_steps} · {percent}%
            {eta !== null ? ` · about ${formatDuration(eta)} left` : ""}
          </p>
        </>
      ) : null}
      {running && job.preview ? (
        // eslint-disable-next-line @next/next/no-img-element -- a data: URL preview from the job's event stream
        <img className="preview" data-testid="live-preview" src={job.preview} alt={`Live preview at step ${job.step}`} />
      ) : running && job.preview_url ? (
        // Polling (no event stream): the latest preview lives at one URL; the step makes each one a new image.
        <AuthImage className="preview" testId="live-preview" src={`${job.preview_url}?step=${job.step}`} alt={`Live preview at step ${job.step}`} />
      ) : null}
      {job.error && job.status !== "completed" ? (
        <p className="notice notice-error" role="alert">
          {job.error.message} <code>({job.error.code})</code>
        </p>
      ) : null}
    </section>
  );
}
