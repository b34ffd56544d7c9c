"""This gateway's use of one worker: calls in flight, a pause, the model it last loaded, and its client.

The dispatcher keeps one ``WorkerSlot`` per worker id; calls change it only through its methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from ablerefusal.gateway.workers.client import WorkerClient
from ablerefusal.protocol import ModelInfo, WorkerInfo


class DispatchWorker(Protocol):
    """What the dispatcher reads of a worker; the pool's ``WorkerHandle`` has these attributes."""

    @property
    def id(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def info(self) -> WorkerInfo | None: ...

    @property
    def models(self) -> list[ModelInfo]: ...

    @property
    def token(self) -> str | None: ...


@dataclass
class WorkerSlot:
    """Calls this gateway runs on one worker, and what it learnt from them."""

    worker_id: str
    # The gateway's id, sent with every call so the worker can tell its callers apart.
    caller: str | None = None
    inflight: int = 0
    # monotonic time before which no call goes to the worker (it said "busy", or could not be reached).
    paused_until: float = 0.0
    # The model of our last call there: preferred when claiming, so the worker need not switch.
    loaded_model: str | None = None
    last_call_end: float = 0.0
    _client: WorkerClient | None = None
    # Calls using each client; a client replaced after the worker's URL changed is closed when unused.
    _users: dict[WorkerClient, int] = field(default_factory=dict)

    def free(self, worker: DispatchWorker, max_concurrent: int, probe_interval_s: float) -> int:
        """How many more calls the worker may take from us now."""
        now = time.monotonic()
        if not worker.ready or now < self.paused_until:
            return 0
        # The pool's busy flag is a probe result: it only means "someone else's call" when it was
        # taken after our last call on that worker ended.
        if worker.busy and self.inflight == 0 and now - self.last_call_end > probe_interval_s:
            return 0
        return max(0, max_concurrent - self.inflight)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def acquire(self, worker: DispatchWorker) -> tuple[WorkerClient, WorkerClient | None]:
        """A call starts: the client for the worker's current URL, and a replaced client now unused,
        which the caller closes (``aclose``)."""
        retired = None
        current = self._client
        if current is None or current.base_url != worker.url.rstrip("/"):
            current = self._client = WorkerClient(worker.url, token=worker.token, caller=self.caller)
            self._users.setdefault(current, 0)
        self.inflight += 1
        self._users[current] += 1
        for client, users in list(self._users.items()):
            if client is not current and users == 0:
                retired = client
                del self._users[client]
        return current, retired

    def finished(self) -> None:
        """The worker is done with a call (its device is free); its last writes may still be running."""
        self.inflight -= 1
        self.last_call_end = time.monotonic()

    def release(self, client: WorkerClient) -> bool:
        """A call no longer uses ``client``; True when the caller should close it (replaced, unused)."""
        self._users[client] -= 1
        if client is not self._client and self._users[client] == 0:
            del self._users[client]
            return True
        return False

    def clients(self) -> list[WorkerClient]:
        """Every client still open, for shutdown."""
        return list(self._users)
