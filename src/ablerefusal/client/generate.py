"""``ablerefusal generate``: submit a job to a gateway, follow it, save its images.

Progress comes from the job's Server-Sent Events (parsed by httpx-sse); if the stream breaks (a proxy that
buffers, a gateway restart), the client falls back to polling the job, because the job itself is safe in the
gateway's store.

Input images (``--init-image``, ``--mask``) are uploaded first (``POST /api/v1/uploads``) and the job names
them by the ids the gateway answered.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

TERMINAL = {"completed", "failed", "cancelled", "timed_out"}
_POLL_S = 0.5

console = Console(stderr=True)


def _follow_sse(client: httpx.Client, job_id: str, progress: Progress, task: TaskID) -> None:
    """Shows the job's progress until its terminal status event (gateway/events.py's event shapes)."""
    url = f"/api/v1/generate/{job_id}/events"
    with connect_sse(client, "GET", url, timeout=httpx.Timeout(10, read=None)) as source:
        source.response.raise_for_status()
        for sse in source.iter_sse():
            event = json.loads(sse.data)
            if event.get("type") == "progress":
                progress.update(task, completed=float(event["progress"]), description="running")
            elif event.get("type") == "status":
                job = event["job"]
                progress.update(task, completed=float(job["progress"]), description=str(job["status"]))
                if job["status"] in TERMINAL:
                    return


def _poll(client: httpx.Client, job_id: str, progress: Progress, task: TaskID) -> dict[str, Any]:
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
    lines += [f"  {d['field']}: {d['message']}" for d in error.get("details") or []]
    if error.get("available"):
        lines.append("available: " + ", ".join(error["available"]))
    return "\n".join(lines)


def _upload(client: httpx.Client, option: str, path: Path) -> str | None:
    """Upload one input image; its id, or None after saying why it was refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        console.print(f"{option}: cannot read {path}: {exc.strerror or exc}", style="red", markup=False)
        return None
    resp = client.post("/api/v1/uploads", files={"file": (path.name, data)})
    if resp.status_code >= 400:
        console.print(f"{option} {path}: " + _explain(resp), style="red", markup=False)
        return None
    upload_id: str = resp.json()["id"]
    return upload_id


def _set_field(body: dict[str, Any], field: str, value: str) -> None:
    """Set a dotted request field, e.g. ``controlnets.0.image``."""
    *path, last = field.split(".")
    target: Any = body
    for part in path:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last] = value


def run_generate(
    url: str, body: dict[str, Any], out: Path, api_key: str | None, images: dict[str, Path] | None = None
) -> int:
    """Submit ``body`` (after uploading ``images``: request field -> file), follow the job, save its images."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        try:
            for field, path in (images or {}).items():
                option = "--controlnet" if field.startswith("controlnets.") else "--" + field.replace("_", "-")
                upload_id = _upload(client, option, path)
                if upload_id is None:
                    return 1
                _set_field(body, field, upload_id)
            resp = client.post("/api/v1/generate", json=body)
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot reach the gateway at {url}: {exc}[/red]")
            return 2
        if resp.status_code >= 400:
            # markup=False: the gateway's message may hold [brackets] that rich would read as styles.
            console.print(_explain(resp), style="red", markup=False)
            return 1
        job_id = resp.json()["id"]
        console.print(f"job {job_id} queued")
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("queued", total=100)
            try:
                _follow_sse(client, job_id, progress, task)
            except (httpx.HTTPError, SSEError, ValueError, KeyError) as exc:
                console.print(f"progress stream ended ({type(exc).__name__}); polling instead")
            job = _poll(client, job_id, progress, task)
        saved = _save(client, job, out)
        for path in saved:
            print(path)
        if job["status"] != "completed":
            error = job.get("error") or {}
            console.print(f"job {job['status']}: {error.get('message', '')}", style="red", markup=False)
            return 1
        console.print(f"[green]saved {len(saved)} image(s) to {out}[/green]")
        return 0
