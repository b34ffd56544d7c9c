"""Job store: persistent queue, state machine and claim policy. ``JobStore`` is the entry point."""

from ablerefusal.gateway.jobs.errors import (
    IdempotencyConflict,
    JobNotFinished,
    JobNotFound,
    JobStoreError,
    QueueFull,
)
from ablerefusal.gateway.jobs.store import ClaimedJob, JobStore, Preview, Submitted, request_hash

__all__ = [
    "ClaimedJob",
    "IdempotencyConflict",
    "JobNotFinished",
    "JobNotFound",
    "JobStore",
    "JobStoreError",
    "Preview",
    "QueueFull",
    "Submitted",
    "request_hash",
]
