"""Typed errors of the job store; the API layer maps each to one HTTP answer."""

from __future__ import annotations


class JobStoreError(Exception):
    """Base class of every job store error."""


class JobNotFound(JobStoreError):
    """No job with this id (→ 404)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class QueueFull(JobStoreError):
    """The queue holds ``max_queue_length`` queued jobs already (→ 429 with Retry-After)."""

    def __init__(self, queued: int, max_queue_length: int, retry_after: int) -> None:
        super().__init__(f"queue is full: {queued} jobs queued, the limit is {max_queue_length}")
        self.queued = queued
        self.max_queue_length = max_queue_length
        self.retry_after = retry_after


class IdempotencyConflict(JobStoreError):
    """The Idempotency-Key was used before with another request body (→ 422)."""

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for job {job_id} with a different body")
        self.key = key
        self.job_id = job_id


class JobNotFinished(JobStoreError):
    """The operation needs a terminal job, e.g. delete (→ 409)."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is {status}; only finished jobs can be deleted")
        self.job_id = job_id
        self.status = status
