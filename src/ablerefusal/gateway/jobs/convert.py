"""Rows of the job tables → public ``schemas.Job`` objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ConfigDict

from ablerefusal.gateway.schemas import GenerateRequest, Job, JobError, JobInputs, JobResult, JobStatus
from ablerefusal.gateway.uploads import URL_PREFIX as UPLOADS_URL_PREFIX

OUTPUTS_URL_PREFIX = "/outputs/"
# Where the gateway serves a running job's latest preview (api/generate.py).
PREVIEW_URL = "/api/v1/generate/{job_id}/preview"
# SQLAlchemy's RowMapping is keyed by names or columns.
Row = Mapping[Any, Any]


class StoredRequest(GenerateRequest):
    """A request as stored in a job row. Unlike the API's, it ignores fields it does not know, so rows
    written by a newer (or older) version of the gateway stay readable (DESIGN.md §10)."""

    model_config = ConfigDict(extra="ignore")


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def result_from_row(row: Row) -> JobResult:
    return JobResult(
        image_url=OUTPUTS_URL_PREFIX + str(row["path"]),
        seed=int(row["seed"]),
        index=int(row["idx"]),
        metadata=dict(row["meta"] or {}),
        infotext=str(row["infotext"] or ""),
    )


def inputs_of(request: GenerateRequest) -> JobInputs | None:
    """The URLs of a stored request's input images (stored requests name them by upload id)."""
    if request.init_image is None and request.mask is None:
        return None

    def url(upload_id: str | None) -> str | None:
        return None if upload_id is None else UPLOADS_URL_PREFIX + upload_id

    return JobInputs(init_image=url(request.init_image), mask=url(request.mask))


def job_from_row(row: Row, results: Sequence[Row], queue_position: int | None, *, has_preview: bool = False) -> Job:
    status = JobStatus(row["status"])
    request = StoredRequest.model_validate(row["request"])
    total = int(row["total_steps"])
    step = int(row["step"])
    if status == JobStatus.completed:
        # Progress writes are throttled, so the stored step may lag: a completed job ran every step.
        total = total or request.steps
        step, progress = total, 100.0
    elif total > 0:
        progress = min(100.0, 100.0 * step / total)
    else:
        progress = 0.0
    error = row["error"]
    return Job(
        id=row["id"],
        status=status,
        progress=progress,
        step=step,
        total_steps=total,
        queue_position=queue_position if status == JobStatus.queued else None,
        priority=int(row["priority"]),
        attempts=int(row["attempts"]),
        created_at=to_datetime(row["created_at"]),
        started_at=to_datetime(row["started_at"]),
        finished_at=to_datetime(row["finished_at"]),
        deadline_at=to_datetime(row["deadline_at"]),
        worker_id=row["worker_id"],
        request=request,
        inputs=inputs_of(request),
        results=[result_from_row(r) for r in sorted(results, key=lambda r: int(r["idx"]))],
        error=JobError.model_validate(error) if error else None,
        preview_url=PREVIEW_URL.format(job_id=row["id"]) if has_preview and status == JobStatus.running else None,
    )
