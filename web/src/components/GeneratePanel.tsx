"use client";
import { useCallback, useEffect, useState } from "react";

import { api, ApiFailure, TERMINAL, unwrap, type Job, type SamplerInfo } from "@/api/client";
import { watchJob } from "@/api/watch";
import { fromRequest, toRequest, type FormParams } from "@/lib/params";
import { validateRequest, type FieldErrors } from "@/lib/rules";
import { KEYS, loadJSON, saveJSON } from "@/lib/storage";
import { usePoll } from "@/lib/usePoll";

import { GenerateForm } from "./GenerateForm";
import { JobProgress } from "./JobProgress";
import { NoModels } from "./NoModels";
import { ErrorNotice } from "./Notice";
import { ResultsGrid } from "./ResultsGrid";

const loadModels = (signal: AbortSignal) => unwrap(api.GET("/api/v1/models", { signal }));
const loadSamplers = async (signal: AbortSignal): Promise<SamplerInfo[]> =>
  (await unwrap(api.GET("/api/v1/samplers", { signal }))).samplers;

/** Server field names may be dotted (`body.width`); the form knows the last segment. */
function serverFieldErrors(failure: ApiFailure): FieldErrors {
  const errors: FieldErrors = {};
  for (const detail of failure.details) {
    const field = detail.field.split(".").pop() as keyof FieldErrors;
    errors[field] = detail.message;
  }
  return errors;
}

export function GeneratePanel({ params, setParams }: { params: FormParams; setParams: (p: FormParams) => void }) {
  const models = usePoll(loadModels, 10_000);
  const samplers = usePoll(loadSamplers, null);
  const [attempted, setAttempted] = useState(false);
  const [serverErrors, setServerErrors] = useState<FieldErrors>({});
  const [failure, setFailure] = useState<ApiFailure | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const [jobId, setJobId] = useState<string | null>(() => loadJSON<string | null>(KEYS.activeJob, null));
  const [job, setJob] = useState<Job | null>(null);
  const [watchError, setWatchError] = useState<ApiFailure | null>(null);
  const [lastSeed, setLastSeed] = useState<number | null>(() => loadJSON<number | null>(KEYS.lastSeed, null));

  // Follow the active job (also after a reload) until it is terminal; its first seed becomes "last seed".
  useEffect(() => {
    if (!jobId) return;
    const controller = new AbortController();
    const onJob = (next: Job) => {
      setJob(next);
      const first = next.results?.[0];
      if (TERMINAL.has(next.status) && first) {
        setLastSeed(first.seed);
        saveJSON(KEYS.lastSeed, first.seed);
      }
    };
    watchJob(jobId, onJob, controller.signal).catch((err: unknown) => {
      if (controller.signal.aborted) return;
      setWatchError(err instanceof ApiFailure ? err : new ApiFailure(String(err), null, "client"));
    });
    return () => controller.abort();
  }, [jobId]);

  const change = useCallback(
    (next: FormParams) => {
      // A server error belongs to the value it judged: editing that field clears it.
      setServerErrors((errors) => {
        const kept: FieldErrors = {};
        for (const [field, message] of Object.entries(errors) as [keyof FieldErrors, string][]) {
          const key = field as keyof FormParams;
          if (!(key in next) || next[key] === params[key]) kept[field] = message;
        }
        return kept;
      });
      setParams(next);
    },
    [params, setParams],
  );

  const request = toRequest(params, lastSeed);
  const clientErrors = validateRequest(request);
  if (!attempted) delete clientErrors.prompt;
  const errors: FieldErrors = { ...clientErrors, ...serverErrors };

  const submit = async () => {
    setAttempted(true);
    setFailure(null);
    if (Object.keys(validateRequest(request)).length > 0) return;
    setSubmitting(true);
    try {
      const created = await unwrap(api.POST("/api/v1/generate", { body: request }));
      setServerErrors({});
      setAttempted(false);
      setWatchError(null);
      setJob(created);
      setJobId(created.id);
      saveJSON(KEYS.activeJob, created.id);
    } catch (err) {
      const f = err instanceof ApiFailure ? err : new ApiFailure(String(err), null, "client");
      const fieldErrors = serverFieldErrors(f);
      setServerErrors(fieldErrors);
      if (Object.keys(fieldErrors).length === 0) setFailure(f);
    } finally {
      setSubmitting(false);
    }
  };

  const cancel = async () => {
    if (!job) return;
    try {
      setJob(await unwrap(api.POST("/api/v1/generate/{job_id}/cancel", { params: { path: { job_id: job.id } } })));
    } catch (err) {
      setFailure(err instanceof ApiFailure ? err : new ApiFailure(String(err), null, "client"));
    }
  };

  const modelList = models.data?.models ?? null;
  return (
    <div className="generate-layout">
      <section className="panel" aria-labelledby="generate-heading">
        <h2 id="generate-heading">Generate</h2>
        {modelList && modelList.length === 0 ? <NoModels /> : null}
        <ErrorNotice error={models.error} title="Models" />
        <GenerateForm
          params={params}
          onChange={change}
          onSubmit={submit}
          models={modelList}
          defaultModel={models.data?.default ?? null}
          samplers={samplers.data}
          errors={errors}
          submitting={submitting}
          lastSeed={lastSeed}
        />
        <ErrorNotice error={failure} title="Not submitted" />
      </section>
      <section className="panel" aria-labelledby="output-heading" aria-live="polite">
        <h2 id="output-heading">Output</h2>
        {job ? (
          <>
            <p className="muted job-prompt">{job.request.prompt}</p>
            <JobProgress job={job} />
            {!TERMINAL.has(job.status) ? (
              <button type="button" onClick={cancel}>
                Cancel job
              </button>
            ) : null}
            <ResultsGrid
              job={job}
              actions={{
                onReuseSettings: (j) => setParams(fromRequest(params, j.request, null)),
                onReuseSeed: (j, seed) => setParams(fromRequest(params, j.request, seed)),
              }}
            />
          </>
        ) : (
          <p className="muted">Your images appear here.</p>
        )}
        <ErrorNotice error={watchError} title="Lost track of the job" />
      </section>
    </div>
  );
}
