"use client";
import { TERMINAL, type Job, type JobResult, type JobStatus } from "@/api/client";
import { HISTORY_PAGE_SIZE as PAGE_SIZE, useDeleteJob, useHistory } from "@/api/queries";
import { STATUS_LABEL } from "@/lib/format";

import { JobRow } from "./JobRow";
import { ErrorNotice } from "./Notice";
import { ResultsGrid } from "./ResultsGrid";

/** What History shows; kept by the app so switching tabs and back finds the same filter and page. */
export interface HistoryView {
  status: JobStatus | "";
  offset: number;
}

export const FIRST_HISTORY_PAGE: HistoryView = { status: "", offset: 0 };

export function HistoryPanel(props: {
  onReuse: (job: Job, seed: number | null) => void;
  view: HistoryView;
  onView: (view: HistoryView) => void;
  onSendToImage?: (job: Job, result: JobResult) => void;
}) {
  const { onReuse, view, onView, onSendToImage } = props;
  const { status, offset } = view;
  const setOffset = (next: number) => onView({ status, offset: next });
  const page = useHistory(offset, status);
  const deleteJob = useDeleteJob();

  const remove = (job: Job) => {
    if (!window.confirm(`Delete this job and its ${(job.results ?? []).length} image(s)?`)) return;
    deleteJob.mutate(job.id);
  };

  const data = page.data;
  const last = data ? Math.min(data.offset + data.items.length, data.total) : 0;
  return (
    <section className="panel" aria-labelledby="history-heading">
      <h2 id="history-heading">History</h2>
      <div className="toolbar">
        <label htmlFor="history-status">Status</label>
        <select
          id="history-status"
          value={status}
          onChange={(e) => onView({ status: e.target.value as JobStatus | "", offset: 0 })}
        >
          <option value="">All</option>
          {(Object.keys(STATUS_LABEL) as JobStatus[]).map((s) => (
            <option key={s} value={s}>
              {STATUS_LABEL[s]}
            </option>
          ))}
        </select>
      </div>
      <ErrorNotice error={page.error} title="History" />
      <ErrorNotice error={deleteJob.error} title="Delete" />
      {data && data.items.length === 0 ? <p className="muted">No jobs{status ? ` with status ${STATUS_LABEL[status]}` : ""} yet.</p> : null}
      <ul className="job-list">
        {(data?.items ?? []).map((job) => (
          <li key={job.id}>
            <JobRow job={job}>
              {job.error && job.status !== "completed" ? (
                <p className="notice notice-error">
                  {job.error.message} <code>({job.error.code})</code>
                </p>
              ) : null}
              <ResultsGrid job={job} actions={{ onReuseSettings: (j) => onReuse(j, null), onReuseSeed: (j, seed) => onReuse(j, seed), onSendToImage }} />
              <div className="actions">
                <button type="button" onClick={() => onReuse(job, null)}>
                  Reuse settings
                </button>
                <a className="button" href={`?job=${encodeURIComponent(job.id)}#generate`}>
                  Open
                </a>
                {TERMINAL.has(job.status) ? (
                  <button type="button" className="danger" onClick={() => remove(job)} aria-label={`Delete job ${job.request.prompt}`}>
                    Delete
                  </button>
                ) : null}
              </div>
            </JobRow>
          </li>
        ))}
      </ul>
      {data && data.total > 0 ? (
        <nav className="pager" aria-label="History pages">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}>
            Newer
          </button>
          <span>
            {data.offset + 1}–{last} of {data.total}
          </span>
          <button type="button" disabled={last >= data.total} onClick={() => setOffset(offset + PAGE_SIZE)}>
            Older
          </button>
        </nav>
      ) : null}
    </section>
  );
}
