"use client";
import { useCallback, useEffect, useState, type ReactNode } from "react";

import { ApiFailure, asFailure, TERMINAL, type GenerateRequest, type Job, type JobResult } from "@/api/client";
import { useCancelJob, useModels, useSamplers, useSubmitJob } from "@/api/queries";
import { watchJob } from "@/api/watch";
import { STATUS_LABEL } from "@/lib/format";
import { fromRequest, toRequest, type FormMode, type FormParams } from "@/lib/params";
import { loadPromptHistory, rememberPrompt } from "@/lib/prompts";
import { formField, validateRequest, type FieldErrors, type FieldKey } from "@/lib/rules";
import { KEYS, loadJSON, saveJSON } from "@/lib/storage";

import { AdapterFields } from "./AdapterFields";
import { FIELD_LABEL, firstInvalidControl, GenerateForm } from "./GenerateForm";
import { JobProgress } from "./JobProgress";
import { HiresFields, ImageFields } from "./ModeFields";
import { NoModels } from "./NoModels";
import { ErrorNotice } from "./Notice";
import { PromptTools } from "./PromptTools";
import { ResultsGrid } from "./ResultsGrid";

/** A refused submit: what to announce, and which control takes focus (`attempt` makes each one new). */
interface Rejection {
  message: string;
  control: string | null;
  attempt: number;
}

function rejectionMessage(errors: FieldErrors): string {
  const parts = (Object.entries(errors) as [keyof FieldErrors, string][]).map(([f, m]) => `${FIELD_LABEL[f] ?? f}: ${m}`);
  return `Not submitted. ${parts.join("; ")}.`;
}

/** Server field names may be dotted (`body.width`, `hires.scale`); the form knows them by its own keys. */
function serverFieldErrors(failure: ApiFailure): FieldErrors {
  const errors: FieldErrors = {};
  for (const detail of failure.details) errors[formField(detail.field)] = detail.message;
  return errors;
}

/** Whether an edit touched the value a field error judged (nested fields live under their flat keys). */
function edited(field: FieldKey, before: FormParams, after: FormParams): boolean {
  if (!(field in after)) return false;
  const key = field as keyof FormParams;
  return after[key] !== before[key];
}

/** What the Image tab adds to the panel: its input image, the editor beside the output, and the mask. */
export interface ImageTab {
  /** The init image's upload id; null until one is picked (the submit is refused, naming the image). */
  initImage: string | null;
  /** Whether a mask is painted (the form says how it is used). */
  hasMask: boolean;
  /** Runs at submit, after validation: uploads the painted mask; what it answers joins the request. */
  prepare: () => Promise<Partial<GenerateRequest>>;
  /** The image and its mask editor, shown beside the output; given the form's errors for the image and mask. */
  input: (errors: FieldErrors) => ReactNode;
}

export interface GeneratePanelProps {
  params: FormParams;
  setParams: (p: FormParams) => void;
  /** The job shown in the output area (a deep link's, or the last one submitted); null for none. */
  jobId: string | null;
  onJob: (id: string) => void;
  /** The Image tab's parts; absent on the text tab, which offers hires fix instead. */
  image?: ImageTab;
  /** "Send to image" on each result: the image becomes the Image tab's input. */
  onSendToImage?: (job: Job, result: JobResult) => void;
}

export function GeneratePanel({ params, setParams, jobId, onJob, image, onSendToImage }: GeneratePanelProps) {
  const mode: FormMode = image ? "image" : "text";
  const models = useModels();
  const samplers = useSamplers();
  const submitJob = useSubmitJob();
  const cancelJob = useCancelJob();
  const [attempted, setAttempted] = useState(false);
  const [serverErrors, setServerErrors] = useState<FieldErrors>({});
  const [failure, setFailure] = useState<ApiFailure | null>(null);
  const [rejection, setRejection] = useState<Rejection | null>(null);
  const [job, setJob] = useState<Job | null>(null);
  const [promptHistory, setPromptHistory] = useState<string[]>(loadPromptHistory);
  const [watchError, setWatchError] = useState<ApiFailure | null>(null);
  const [lastSeed, setLastSeed] = useState<number | null>(() => loadJSON<number | null>(KEYS.lastSeed, null));
  const [preparing, setPreparing] = useState(false);

  // Follow the active job (also after a reload) until it is terminal; its first seed becomes "last seed".
  useEffect(() => {
    if (!jobId) return;
    const controller = new AbortController();
    const onUpdate = (next: Job) => {
      setJob(next);
      const first = next.results?.[0];
      if (TERMINAL.has(next.status) && first) {
        setLastSeed(first.seed);
        saveJSON(KEYS.lastSeed, first.seed);
      }
    };
    watchJob(jobId, onUpdate, controller.signal).catch((err: unknown) => {
      if (controller.signal.aborted) return;
      setWatchError(err instanceof ApiFailure ? err : new ApiFailure(String(err), null, "client"));
    });
    return () => controller.abort();
  }, [jobId]);

  // A refused submit puts the keyboard on the first field in error (its error is its description).
  useEffect(() => {
    if (rejection?.control) document.getElementById(rejection.control)?.focus();
  }, [rejection]);

  const change = useCallback(
    (next: FormParams) => {
      // A server error belongs to the value it judged: editing that field clears it.
      setServerErrors((errors) => {
        const kept: FieldErrors = {};
        for (const [field, message] of Object.entries(errors) as [FieldKey, string][]) {
          if (!edited(field, params, next)) kept[field] = message;
        }
        return kept;
      });
      setParams(next);
    },
    [params, setParams],
  );

  const request: GenerateRequest = { ...toRequest(params, lastSeed, mode), ...(image?.initImage ? { init_image: image.initImage } : {}) };
  const validate = () => {
    const found = validateRequest(request);
    if (image && !image.initImage) found.init_image = "choose or drop an image first";
    return found;
  };
  const clientErrors = validate();
  if (!attempted) {
    delete clientErrors.prompt;
    delete clientErrors.init_image;
  }
  const errors: FieldErrors = { ...clientErrors, ...serverErrors };

  const reject = (fieldErrors: FieldErrors) =>
    setRejection((previous) => ({
      message: rejectionMessage(fieldErrors),
      control: firstInvalidControl(fieldErrors, params.seedMode),
      attempt: (previous?.attempt ?? 0) + 1,
    }));

  const submit = async () => {
    setAttempted(true);
    setFailure(null);
    const invalid = validate();
    if (Object.keys(invalid).length > 0) {
      reject(invalid);
      return;
    }
    setRejection(null);
    let body = request;
    if (image) {
      setPreparing(true);
      try {
        body = { ...request, ...(await image.prepare()) };
      } catch (err) {
        setFailure(asFailure(err));
        return;
      } finally {
        setPreparing(false);
      }
    }
    submitJob.mutate(body, {
      onSuccess: (created) => {
        setServerErrors({});
        setAttempted(false);
        setWatchError(null);
        setJob(created);
        setPromptHistory((history) => rememberPrompt(history, request.prompt));
        onJob(created.id);
      },
      onError: (f) => {
        const fieldErrors = serverFieldErrors(f);
        setServerErrors(fieldErrors);
        if (Object.keys(fieldErrors).length === 0) setFailure(f);
        else reject(fieldErrors);
      },
    });
  };

  const cancel = () => {
    if (job) cancelJob.mutate(job.id, { onSuccess: setJob });
  };

  const modelList = models.data?.models ?? null;
  const modeFields = image ? <ImageFields params={params} onChange={change} errors={errors} hasMask={image.hasMask} /> : <HiresFields params={params} onChange={change} errors={errors} />;
  const extra = (
    <>
      {modeFields}
      <AdapterFields params={params} onChange={change} errors={errors} models={modelList} defaultModel={models.data?.default ?? null} />
    </>
  );
  // Not a live region: a running job changes every step, and only its status is worth announcing.
  const output = (
    <section className="panel" aria-labelledby="output-heading">
      <h2 id="output-heading">Output</h2>
      <p className="visually-hidden" role="status" data-testid="job-announcement">
        {job ? `Job ${STATUS_LABEL[job.status].toLowerCase()}.` : ""}
      </p>
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
              onSendToImage,
            }}
          />
        </>
      ) : (
        <p className="muted">Your images appear here.</p>
      )}
      <ErrorNotice error={cancelJob.error} title="Cancel" />
      <ErrorNotice error={watchError} title="Lost track of the job" />
    </section>
  );
  return (
    <div className={image ? "generate-layout image-layout" : "generate-layout"}>
      <section className="panel" aria-labelledby="generate-heading">
        <h2 id="generate-heading">{image ? "Image to image" : "Generate"}</h2>
        {modelList && modelList.length === 0 ? <NoModels /> : null}
        <ErrorNotice error={models.error} title="Models" />
        <PromptTools params={params} onChange={change} history={promptHistory} />
        <GenerateForm
          params={params}
          onChange={change}
          onSubmit={submit}
          models={modelList}
          defaultModel={models.data?.default ?? null}
          samplers={samplers.data ?? null}
          errors={errors}
          submitting={submitJob.isPending || preparing}
          lastSeed={lastSeed}
          extra={extra}
        />
        <ErrorNotice error={failure} title="Not submitted" />
        {rejection && Object.keys(errors).length > 0 ? (
          // Keyed by attempt: the same refusal twice is announced twice.
          <p key={rejection.attempt} className="notice notice-error" role="alert" data-testid="submit-rejected">
            {rejection.message}
          </p>
        ) : null}
      </section>
      {image ? (
        <div className="image-workspace">
          <section className="panel" aria-labelledby="input-heading">
            <h2 id="input-heading">Input</h2>
            {image.input(errors)}
          </section>
          {output}
        </div>
      ) : (
        output
      )}
    </div>
  );
}
