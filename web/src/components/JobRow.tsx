"use client";
import type { Job } from "@/api/client";
import { formatTime, STATUS_LABEL } from "@/lib/format";

/** One job in a list: status, prompt, when, and whatever actions the list offers. */
export function JobRow({ job, children }: { job: Job; children?: React.ReactNode }) {
  return (
    <div className="job-row" data-testid="job-row" data-job-id={job.id} data-status={job.status}>
      <div className="job-row-main">
        <span className={`badge badge-${job.status}`}>{STATUS_LABEL[job.status]}</span>
        {job.status === "queued" && job.queue_position != null ? <span className="muted">#{job.queue_position}</span> : null}
        {job.status === "running" ? (
          <span className="muted">
            step {job.step}/{job.total_steps}
          </span>
        ) : null}
        <span className="job-row-prompt" title={job.request.prompt}>
          {job.request.prompt}
        </span>
      </div>
      <div className="job-row-meta muted">
        {job.request.width}×{job.request.height} · {job.request.steps} steps · seed {job.request.seed} · priority {job.priority} ·{" "}
        {formatTime(job.created_at)}
      </div>
      {children}
    </div>
  );
}
