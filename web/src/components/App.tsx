"use client";
import { QueryClientProvider } from "@tanstack/react-query";
import { useCallback, useEffect, useState } from "react";

import type { Job } from "@/api/client";
import { makeQueryClient } from "@/api/queries";
import { DEFAULT_PARAMS, fromRequest, restoreParams, type FormParams } from "@/lib/params";
import { KEYS, loadJSON, saveJSON } from "@/lib/storage";

import { GeneratePanel } from "./GeneratePanel";
import { HistoryPanel } from "./HistoryPanel";
import { QueuePanel } from "./QueuePanel";
import { SettingsPanel } from "./SettingsPanel";

const TABS = [
  { id: "generate", label: "Generate" },
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

function loadParams(): FormParams {
  const saved = restoreParams(loadJSON<Partial<FormParams> | null>(KEYS.params, null));
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

  useEffect(() => {
    const onHash = () => setTab(tabFromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
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

  const go = (id: TabId) => {
    window.history.pushState(null, "", `#${id}`);
    setTab(id);
  };

  const reuse = (job: Job, seed: number | null) => {
    setParams(fromRequest(params, job.request, seed));
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
        {tab === "generate" ? <GeneratePanel params={params} setParams={setParams} /> : null}
        {tab === "queue" ? <QueuePanel /> : null}
        {tab === "history" ? <HistoryPanel onReuse={reuse} /> : null}
        {tab === "settings" ? <SettingsPanel /> : null}
      </main>
    </>
  );
}
