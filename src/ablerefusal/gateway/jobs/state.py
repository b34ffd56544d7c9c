"""The job state machine (DESIGN.md §5) and the retry backoff.

The store checks every transition against ``TRANSITIONS`` and guards its UPDATE with the current status,
so a terminal state never changes even when two gateways race.
"""

from __future__ import annotations

import random

from ablerefusal.gateway.schemas import TERMINAL_STATUSES, JobStatus

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled, JobStatus.timed_out}),
    JobStatus.running: frozenset(
        {
            JobStatus.completed,
            JobStatus.failed,
            JobStatus.cancelled,
            JobStatus.timed_out,
            # Retryable failure or lapsed lease.
            JobStatus.queued,
        }
    ),
    **{terminal: frozenset() for terminal in TERMINAL_STATUSES},
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    """Whether ``current → new`` is a legal edge of the lifecycle."""
    return new in TRANSITIONS[current]


def sources_of(new: JobStatus) -> list[str]:
    """Statuses a job may be in to move to ``new`` (the WHERE clause of the guarded UPDATE)."""
    return [str(s) for s, targets in TRANSITIONS.items() if new in targets]


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with "equal jitter".

    Half the delay is fixed and half random, so retries of jobs that failed together (a worker crash
    fails a whole coalesced batch) spread out instead of hitting the next worker at the same instant.
    """
    delay = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    draw = (rng or random).random()
    return delay / 2 + draw * delay / 2
