"use client";
import type { QueueStatus } from "@/api/client";
import { useCancelJob, useQueue } from "@/api/queries";

import { JobRow } from "./JobRow";
import { ErrorNotice } from "./Notice";

const COUNT_LABELS: [keyof QueueStatus["counts"], string][] = [
  ["queued", "Queued"],
  ["running", "Running"],
  ["completed", "Completed"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
  ["timed_out", "Timed out"],
];

export function QueuePanel() {
  const queue = useQueue();
  const cancelJob = useCancelJob();
  const cancel = (id: string) => cancelJob.mutate(id);
  const data = queue.data;
  return (
    <section className="panel" aria-labelledby="queue-heading">
      <h2 id="queue-heading">Queue</h2>
      <ErrorNotice error={queue.error} title="Queue" />
      <ErrorNotice error={cancelJob.error} title="Cancel" />
      {data ? (
        <>
          <dl className="counts" aria-label="Job counts">
            {COUNT_LABELS.map(([key, label]) => (
              <div key={key} data-testid={`count-${key}`}>
                <dt>{label}</dt>
                <dd>{data.counts[key]}</dd>
              </div>
            ))}
          </dl>
          <p className="muted">Submissions are refused beyond {data.max_queue_length} queued jobs.</p>
          <h3>Running</h3>
          {(data.running ?? []).length === 0 ? <p className="muted">Nothing is running.</p> : null}
          {(data.running ?? []).map((job) => (
            <JobRow key={job.id} job={job}>
              <button type="button" onClick={() => cancel(job.id)} aria-label={`Cancel running job ${job.request.prompt}`}>
                Cancel
              </button>
            </JobRow>
          ))}
          <h3>Queued, in the order they will run</h3>
          {(data.queued ?? []).length === 0 ? <p className="muted">The queue is empty.</p> : null}
          <ol className="job-list">
            {(data.queued ?? []).map((job) => (
              <li key={job.id}>
                <JobRow job={job}>
                  <button type="button" onClick={() => cancel(job.id)} aria-label={`Cancel queued job ${job.request.prompt}`}>
                    Cancel
                  </button>
                </JobRow>
              </li>
            ))}
          </ol>
        </>
      ) : (
        <p className="muted">Loading…</p>
      )}
    </section>
  );
}
