"use client";
import { QueryClientProvider } from "@tanstack/react-query";
import { useCallback, useEffect, useState } from "react";

import { asFailure, type ApiFailure, type GalleryImage, type Job, type JobResult } from "@/api/client";
import { fetchImage, makeQueryClient, uploadImage, useModels, useSamplers, type GalleryFilter, type Upload } from "@/api/queries";
import { formFromParameters } from "@/lib/infotext";
import { EMPTY_HISTORY, type MaskHistory } from "@/lib/mask";
import { DEFAULT_PARAMS, fitSize, fromRequest, restoreParams, toRequest, type FormParams } from "@/lib/params";
import { KEYS, loadJSON, saveJSON } from "@/lib/storage";

import { GalleryPanel, NO_FILTER } from "./GalleryPanel";
import { GeneratePanel } from "./GeneratePanel";
import { FIRST_HISTORY_PAGE, HistoryPanel, type HistoryView } from "./HistoryPanel";
import { ImagePanel } from "./ImagePanel";
import { PngInfoDrop } from "./PngInfoDrop";
import { QueuePanel } from "./QueuePanel";
import { SettingsPanel } from "./SettingsPanel";

const TABS = [
  { id: "generate", label: "Generate" },
  { id: "image", label: "Image" },
  { id: "gallery", label: "Gallery" },
  { id: "queue", label: "Queue" },
  { id: "history", label: "History" },
  { id: "settings", label: "Settings" },
] as const;
type TabId = (typeof TABS)[number]["id"];
type Theme = "system" | "light" | "dark";

// The tab lives in the URL hash, so a reload or a shared link opens the same screen under any base path.
function tabFromHash(): TabId {
  const id = window.location.hash.replace(/^#/, "");
  return TABS.some((t) => t.id === id) ? (id as TabId) : "generate";
}

/**
 * The job a link opens: `?job=<id>` (a static export has no /jobs/<id> route to serve). Without one, the job
 * last submitted in this browser, so a reload keeps following it.
 */
function jobFromUrl(): string | null {
  return new URLSearchParams(window.location.search).get("job") || loadJSON<string | null>(KEYS.activeJob, null);
}

/** A gallery image's parameters as the request "reuse" reads them from. */
function requestOf(image: GalleryImage, current: FormParams): Job["request"] {
  const { prompt, negative_prompt, model, width, height, steps, sampler, cfg_scale, seed } = image;
  // An image is one of its batch: batch size, priority and what the gallery does not list stay as the form has them.
  return { ...toRequest(current, null), prompt, negative_prompt, model, width, height, steps, sampler, cfg_scale, seed };
}

function loadParams(key: typeof KEYS.params | typeof KEYS.imageParams = KEYS.params): FormParams {
  const saved = restoreParams(loadJSON<Partial<FormParams> | null>(key, null));
  // Numbers saved while a field was empty come back as null; the default is a better start than an error.
  for (const key of Object.keys(DEFAULT_PARAMS) as (keyof FormParams)[]) {
    if (typeof DEFAULT_PARAMS[key] === "number" && typeof saved[key] !== "number") {
      (saved as unknown as Record<string, unknown>)[key] = DEFAULT_PARAMS[key];
    }
  }
  return saved;
}

export default function App() {
  const [queryClient] = useState(makeQueryClient);
  return (
    <QueryClientProvider client={queryClient}>
      <Studio />
    </QueryClientProvider>
  );
}

function Studio() {
  const [tab, setTab] = useState<TabId>(tabFromHash);
  const [params, setParamsState] = useState<FormParams>(loadParams);
  const [theme, setTheme] = useState<Theme>(() => loadJSON<Theme>(KEYS.theme, "system"));
  const [jobId, setJobId] = useState<string | null>(jobFromUrl);
  // The Image tab keeps its own form and job; its input image and mask outlive tab switches.
  const [imageParams, setImageParamsState] = useState<FormParams>(() => loadParams(KEYS.imageParams));
  const [imageJobId, setImageJobId] = useState<string | null>(() => loadJSON<string | null>(KEYS.activeImageJob, null));
  const [upload, setUpload] = useState<Upload | null>(() => loadJSON<Upload | null>(KEYS.imageInput, null));
  const [uploading, setUploading] = useState(false);
  const [uploadError, setUploadError] = useState<ApiFailure | null>(null);
  const [mask, setMask] = useState<MaskHistory>(EMPTY_HISTORY);
  const [historyView, setHistoryView] = useState<HistoryView>(FIRST_HISTORY_PAGE);
  const [galleryFilter, setGalleryFilter] = useState<GalleryFilter>(NO_FILTER);
  const samplers = useSamplers();
  const models = useModels();

  // Back and forward move between tabs (each switch is a history entry) and between opened jobs.
  useEffect(() => {
    const onNavigate = () => {
      setTab(tabFromHash());
      setJobId(jobFromUrl());
    };
    window.addEventListener("hashchange", onNavigate);
    window.addEventListener("popstate", onNavigate);
    return () => {
      window.removeEventListener("hashchange", onNavigate);
      window.removeEventListener("popstate", onNavigate);
    };
  }, []);

  useEffect(() => {
    if (theme === "system") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", theme);
    saveJSON(KEYS.theme, theme);
  }, [theme]);

  // Every edit is saved at once: a reload, a crash or a failed submit never loses what was typed.
  const setParams = useCallback((next: FormParams) => {
    setParamsState(next);
    saveJSON(KEYS.params, next);
  }, []);

  // Functional, so an upload that finishes after other edits changes only what it is about.
  const patchImageParams = useCallback((patch: (p: FormParams) => FormParams) => {
    setImageParamsState((current) => {
      const next = patch(current);
      saveJSON(KEYS.imageParams, next);
      return next;
    });
  }, []);
  const setImageParams = useCallback((next: FormParams) => patchImageParams(() => next), [patchImageParams]);

  /** Stores an image as the Image tab's input; the form takes its size (the nearest one a job may ask for). */
  const takeInput = async (load: () => Promise<Blob>, name: string) => {
    setUploading(true);
    setUploadError(null);
    try {
      const stored = await uploadImage(await load(), name);
      setUpload(stored);
      saveJSON(KEYS.imageInput, stored);
      setMask(EMPTY_HISTORY);
      patchImageParams((p) => ({ ...p, ...fitSize(stored.width, stored.height) }));
    } catch (err) {
      setUploadError(asFailure(err));
    } finally {
      setUploading(false);
    }
  };

  const removeInput = () => {
    setUpload(null);
    saveJSON(KEYS.imageInput, null);
    setMask(EMPTY_HISTORY);
    setUploadError(null);
  };

  const go = (id: TabId) => {
    if (id === tab) return;
    window.history.pushState(null, "", `${window.location.search}#${id}`);
    setTab(id);
  };

  // A new job becomes the page's address, so a reload or a shared link opens it.
  const openJob = (id: string) => {
    saveJSON(KEYS.activeJob, id);
    window.history.replaceState(null, "", `?job=${encodeURIComponent(id)}#generate`);
    setJobId(id);
  };

  const openImageJob = (id: string) => {
    saveJSON(KEYS.activeImageJob, id);
    setImageJobId(id);
  };

  /** "Send to image": the picture becomes the Image tab's input and its prompt and settings fill that form. */
  const sendToImage = (imageUrl: string, request: Job["request"]) => {
    patchImageParams((p) => fromRequest(p, request, null));
    go("image");
    void takeInput(() => fetchImage(imageUrl), imageUrl.split("/").pop() ?? "image.png");
  };
  const sendResult = (job: Job, result: JobResult) => sendToImage(result.image_url, job.request);
  const sendGalleryImage = (image: GalleryImage) => sendToImage(image.image_url, requestOf(image, imageParams));

  const reuse = (job: Job, seed: number | null) => {
    setParams(fromRequest(params, job.request, seed));
    go("generate");
  };

  const reuseImage = (image: GalleryImage, withSeed: boolean) => {
    setParams(fromRequest(params, requestOf(image, params), withSeed ? image.seed : null));
    go("generate");
  };

  const fillFromImage = (parameters: Record<string, string>) => {
    const modelIds = (models.data?.models ?? []).map((m) => m.id);
    setParams(formFromParameters(params, parameters, samplers.data ?? [], modelIds).params);
    go("generate");
  };

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <h1>AbleRefusal</h1>
        <nav aria-label="Screens">
          <ul className="tabs">
            {TABS.map((t) => (
              <li key={t.id}>
                <a
                  href={`#${t.id}`}
                  aria-current={tab === t.id ? "page" : undefined}
                  onClick={(e) => {
                    e.preventDefault();
                    go(t.id);
                  }}
                >
                  {t.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <label className="theme-picker">
          <span>Theme</span>
          <select value={theme} onChange={(e) => setTheme(e.target.value as Theme)}>
            <option value="system">System</option>
            <option value="light">Light</option>
            <option value="dark">Dark</option>
          </select>
        </label>
      </header>
      <main id="main" tabIndex={-1}>
        {tab === "generate" ? <GeneratePanel params={params} setParams={setParams} jobId={jobId} onJob={openJob} onSendToImage={sendResult} /> : null}
        {tab === "image" ? (
          <ImagePanel
            params={imageParams}
            setParams={setImageParams}
            jobId={imageJobId}
            onJob={openImageJob}
            input={{ upload, busy: uploading, error: uploadError }}
            onFile={(file) => void takeInput(async () => file, file.name)}
            onRemove={removeInput}
            mask={mask}
            onMask={setMask}
            onSendToImage={sendResult}
          />
        ) : null}
        {tab === "gallery" ? <GalleryPanel filter={galleryFilter} onFilter={setGalleryFilter} onReuse={reuseImage} onSendToImage={sendGalleryImage} /> : null}
        {tab === "queue" ? <QueuePanel /> : null}
        {tab === "history" ? <HistoryPanel onReuse={reuse} view={historyView} onView={setHistoryView} onSendToImage={sendResult} /> : null}
        {tab === "settings" ? <SettingsPanel /> : null}
      </main>
      <PngInfoDrop onFill={fillFromImage} />
    </>
  );
}
