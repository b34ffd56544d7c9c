"""Who drives this worker: the callers (gateways) of its generation calls, as they name themselves.

A gateway sends its id with every call (``X-AbleRefusal-Caller``). A fleet gives each worker to one gateway
at a time (a lease in the job store), so calls from two callers must never overlap here; the ledger logs
every call with its caller, and a warning — counted in ``overlaps`` — whenever a call arrives from one
caller while another's call is still streaming. Operators (and the fleet test) read that from the log.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("ablerefusal.worker.callers")

CALLER_HEADER = "x-ablerefusal-caller"
ANONYMOUS = "-"


class CallerLedger:
    """Calls in flight per caller; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[str, set[str]] = {}
        self.overlaps = 0

    def arrive(self, caller: str) -> list[str]:
        """A generation call arrives from ``caller`` (accepted or not): the other callers with calls in
        flight now, logged as an overlap when there are any."""
        with self._lock:
            others = sorted(c for c, calls in self._inflight.items() if calls and c != caller)
            if others:
                self.overlaps += 1
        if others:
            log.warning("two callers at once: %s called while %s still has a call in flight", caller, ", ".join(others))
        return others

    def enter(self, caller: str, call_id: str, job_ids: list[str]) -> None:
        with self._lock:
            self._inflight.setdefault(caller, set()).add(call_id)
        log.info("call %s from caller %s: jobs %s", call_id, caller, ",".join(job_ids))

    def leave(self, caller: str, call_id: str) -> None:
        with self._lock:
            calls = self._inflight.get(caller)
            if calls is not None:
                calls.discard(call_id)
                if not calls:
                    del self._inflight[caller]

    def refused(self, caller: str, code: str) -> None:
        log.info("call from caller %s refused: %s", caller, code)
