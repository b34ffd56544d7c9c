"""``ablerefusal generate``: submit a job to a gateway, follow it, save its images.

Progress comes from the job's SSE stream; if the stream breaks (a proxy that buffers, a gateway restart),
the client falls back to polling the job, because the job itself is safe in the gateway's store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

TERMINAL = {"completed", "failed", "cancelled", "timed_out"}
_POLL_S = 0.5

console = Console(stderr=True)


def _sse_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _follow_sse(client: httpx.Client, job_id: str, progress: Progress, task: Any) -> None:
    with client.stream("GET", f"/api/v1/generate/{job_id}/events", timeout=httpx.Timeout(10, read=None)) as resp:
        resp.raise_for_status()
        for _event, data in _sse_events(resp):
            payload = json.loads(data)
            job = payload.get("job", payload)
            if isinstance(job, dict) and "status" in job:
                progress.update(task, completed=float(job.get("progress", 0)), description=str(job["status"]))
                if job["status"] in TERMINAL:
                    return


def _poll(client: httpx.Client, job_id: str, progress: Progress, task: Any) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/generate/{job_id}").raise_for_status().json()
        progress.update(task, completed=float(job["progress"]), description=job["status"])
        if job["status"] in TERMINAL:
            return job
        time.sleep(_POLL_S)


def _save(client: httpx.Client, job: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for result in job["results"]:
        target = out / f"{job['id']}-{result['index']}.png"
        target.write_bytes(client.get(result["image_url"]).raise_for_status().content)
        saved.append(target)
    return saved


def _explain(resp: httpx.Response) -> str:
    try:
        error = resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    lines = [f"HTTP {resp.status_code} {error['code']}: {error['message']}"]
    if error.get("available"):
        lines.append("available: " + ", ".join(error["available"]))
    return "\n".join(lines)


def run_generate(url: str, body: dict[str, Any], out: Path, api_key: str | None) -> int:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        try:
            resp = client.post("/api/v1/generate", json=body)
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot reach the gateway at {url}: {exc}[/red]")
            return 2
        if resp.status_code >= 400:
            console.print(f"[red]{_explain(resp)}[/red]")
            return 1
        job_id = resp.json()["id"]
        console.print(f"job {job_id} queued")
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("queued", total=100)
            try:
                _follow_sse(client, job_id, progress, task)
            except (httpx.HTTPError, ValueError) as exc:
                console.print(f"progress stream ended ({type(exc).__name__}); polling instead")
            job = _poll(client, job_id, progress, task)
        saved = _save(client, job, out)
        for path in saved:
            print(path)
        if job["status"] != "completed":
            error = job.get("error") or {}
            console.print(f"[red]job {job['status']}: {error.get('message', '')}[/red]")
            return 1
        console.print(f"[green]saved {len(saved)} image(s) to {out}[/green]")
        return 0
