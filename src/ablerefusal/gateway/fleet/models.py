"""API shapes of the fleet's shared workers (``/api/v1/workers``)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from ablerefusal.gateway.fleet.registry import RegisteredWorker
from ablerefusal.gateway.schemas import WorkerStatus


class WorkerRegistration(BaseModel):
    """A worker to share with every gateway on the store."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        ...,
        min_length=1,
        max_length=500,
        description="Base URL of the worker's protocol v1 API, e.g. http://10.0.0.7:8001 (calls carry workers.token).",
    )


class SharedWorker(BaseModel):
    """A registered worker, its lease and what this gateway's probes know of it."""

    id: str = Field(..., description="Registry id (use it to remove the worker).")
    url: str = Field(..., description="Base URL of the worker.")
    source: str = Field(..., description="'config' (a gateway's workers.urls / --worker-url) or 'api'.")
    added_at: datetime = Field(..., description="When it was registered.")
    held_by: str | None = Field(None, description="Gateway id whose lease lets it call the worker; null: nobody.")
    lease_until: datetime | None = Field(None, description="When that lease lapses unless renewed.")
    status: WorkerStatus | None = Field(None, description="This gateway's probe of it; null until the first probe.")

    @classmethod
    def of(cls, worker: RegisteredWorker, status: WorkerStatus | None) -> SharedWorker:
        return cls(
            id=worker.id,
            url=worker.url,
            source=worker.source,
            added_at=datetime.fromtimestamp(worker.added_at, UTC),
            held_by=worker.holder,
            lease_until=None if worker.lease_until is None else datetime.fromtimestamp(worker.lease_until, UTC),
            status=status,
        )


class SharedWorkers(BaseModel):
    """Every worker registered in the store, as this gateway sees it."""

    gateway_id: str = Field(..., description="This gateway's id (what held_by names when it drives a worker).")
    workers: list[SharedWorker] = Field(..., description="Registered workers, oldest first.")
