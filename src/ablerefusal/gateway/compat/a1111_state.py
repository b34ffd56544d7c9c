"""What A1111's global ``shared.state`` is to A1111 clients, kept per gateway process: the checkpoint chosen
through ``/options`` and the txt2img requests in flight, so ``/progress``, ``/interrupt`` and ``/skip`` act
on them. Jobs themselves live in the store; this holds only their ids.

Per process by design: the chosen checkpoint is a client-facing default, not job state, and a gateway
restart resetting it to the configured default is what A1111 does too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI

from ablerefusal.gateway.auth import OPEN, Principal
from ablerefusal.gateway.compat.a1111_models import ProgressResponse, ProgressState
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, Job, JobStatus


@dataclass
class A1111Run:
    """One txt2img request: its jobs in iteration order."""

    job_ids: list[str]
    started_at: datetime
    started_mono: float = field(default_factory=time.monotonic)
    interrupted: bool = False
    skipped: bool = False
    owner: str | None = None  # key id of the client that sent it (auth.Principal.owner)


@dataclass
class A1111State:
    checkpoint: str | None = None
    vae: str | None = None  # the sd_vae option set through /options (None: Automatic)
    clip_skip: int = 1  # CLIP_stop_at_last_layers set through /options
    runs: list[A1111Run] = field(default_factory=list)

    def current(self, principal: Principal = OPEN) -> A1111Run | None:
        """The run A1111 would be processing: the oldest one still in flight (A1111 runs one at a time)
        among those ``principal`` may see, so one key cannot watch, interrupt or skip another's."""
        return next((run for run in self.runs if principal.may_access(run.owner)), None)


def state_of(app: FastAPI) -> A1111State:
    state: A1111State | None = getattr(app.state, "a1111", None)
    if state is None:
        state = A1111State()
        app.state.a1111 = state
    return state


def idle_progress() -> ProgressResponse:
    return ProgressResponse(progress=0.0, eta_relative=0.0, state=ProgressState(), current_image=None, textinfo=None)


def _preview_base64(preview: str | None) -> str | None:
    # The store keeps previews as data: URLs; A1111 sends bare base64.
    if preview is None:
        return None
    return preview.split(",", 1)[1] if preview.startswith("data:") else preview


def progress_of(run: A1111Run, jobs: list[Job], now_mono: float) -> ProgressResponse:
    """A1111's progress for one run: iterations done plus the fractions of those running. Several may run
    at once when the dispatcher batches a request's identical iterations into one worker call."""
    done = 0.0
    current: Job | None = None
    for job in jobs:
        if job.status in TERMINAL_STATUSES:
            done += 1
            continue
        done += job.progress / 100
        if current is None:
            current = job
    fraction = min(done / len(jobs), 1.0) if jobs else 0.0
    elapsed = now_mono - run.started_mono
    # A1111's own estimate: time so far scaled by the fraction left.
    eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
    job_no = jobs.index(current) if current is not None else len(jobs) - 1
    state = ProgressState(
        skipped=run.skipped,
        interrupted=run.interrupted,
        job=f"Batch {job_no + 1} out of {len(jobs)}",
        job_count=len(jobs),
        job_timestamp=run.started_at.strftime("%Y%m%d%H%M%S"),
        job_no=job_no,
        sampling_step=current.step if current else 0,
        sampling_steps=current.total_steps if current else 0,
    )
    if current is None:
        text = "Finishing"
    elif current.status is JobStatus.queued:
        text = f"Waiting in queue (position {current.queue_position})"
    else:
        text = f"Sampling step {current.step}/{current.total_steps}"
    return ProgressResponse(
        progress=fraction,
        eta_relative=max(eta, 0.0),
        state=state,
        current_image=_preview_base64(current.preview) if current else None,
        textinfo=text,
    )
