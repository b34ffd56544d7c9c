"use client";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import { useModels, useReady } from "@/api/queries";
import { getApiKey, setApiKey } from "@/lib/storage";

import { NoModels } from "./NoModels";
import { ErrorNotice } from "./Notice";

function ApiKeyForm({ onSaved }: { onSaved: () => void }) {
  const [value, setValue] = useState(getApiKey);
  const [saved, setSaved] = useState(false);
  return (
    <form
      className="api-key-form"
      onSubmit={(e) => {
        e.preventDefault();
        setApiKey(value);
        setSaved(true);
        onSaved();
      }}
    >
      <div className="field">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          value={value}
          onChange={(e) => {
            setValue(e.target.value);
            setSaved(false);
          }}
          aria-describedby="api-key-hint"
        />
        <p className="hint" id="api-key-hint">
          Stored in this browser only and sent as <code>Authorization: Bearer …</code>. Leave empty when the gateway has no keys.
        </p>
      </div>
      <div className="actions">
        <button type="submit">Save key</button>
        <button
          type="button"
          onClick={() => {
            setValue("");
            setApiKey("");
            setSaved(true);
            onSaved();
          }}
        >
          Clear key
        </button>
        {saved ? <span role="status">Saved.</span> : null}
      </div>
    </form>
  );
}

export function SettingsPanel() {
  const ready = useReady();
  const models = useModels();
  const queryClient = useQueryClient();
  // A new key can change every answer (401 before, data after): re-read them all.
  const refresh = () => void queryClient.invalidateQueries();
  const r = ready.data;
  return (
    <section className="panel" aria-labelledby="settings-heading">
      <h2 id="settings-heading">Settings and status</h2>
      <ApiKeyForm onSaved={refresh} />

      <h3>Server</h3>
      <ErrorNotice error={ready.error} title="Readiness" />
      {r ? (
        <p data-testid="readiness">
          <span className={`badge ${r.ready ? "badge-completed" : "badge-failed"}`}>{r.ready ? "Ready" : "Not ready"}</span>{" "}
          Job store {r.store ? "reachable" : "unreachable"}
          {r.reason ? ` — ${r.reason}` : ""}
        </p>
      ) : null}
      <h3>Workers</h3>
      {r && (r.workers ?? []).length === 0 ? <p className="muted">No workers are configured.</p> : null}
      {r && (r.workers ?? []).length > 0 ? (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col">Device</th>
                <th scope="col">State</th>
                <th scope="col">Restarts</th>
              </tr>
            </thead>
            <tbody>
              {(r.workers ?? []).map((w) => (
                <tr key={w.id} data-testid="worker-row">
                  <td>
                    {w.id}
                    <span className="muted"> {w.local ? "(local)" : "(remote)"}</span>
                  </td>
                  <td>{w.device ?? "—"}</td>
                  <td>
                    {w.ready ? (w.busy ? "busy" : "ready") : "not ready"}
                    {w.last_error ? <span className="muted"> — {w.last_error}</span> : null}
                  </td>
                  <td>{w.restarts}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}

      <h3>Models</h3>
      <ErrorNotice error={models.error} title="Models" />
      {models.data && models.data.models.length === 0 ? <NoModels /> : null}
      {models.data && models.data.models.length > 0 ? (
        <ul className="model-list">
          {models.data.models.map((m) => (
            <li key={m.id} data-testid="model-row">
              <strong>{m.name}</strong> <code>{m.id}</code> · {m.family === "sdxl" ? "SDXL" : "SD 1.5"} · {m.format}
              {m.loaded ? " · loaded" : ""}
              {m.demo ? <span className="badge badge-queued"> demo (noise)</span> : null}
              {m.id === models.data?.default ? <span className="muted"> (default)</span> : null}
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}
