"""Process-level behaviour of a worker: exiting with the gateway that started it, and a quiet access log.

A gateway passes its pid (``--parent-pid``); the worker asks Linux itself to SIGTERM it when that parent dies,
even by SIGKILL, so a crashed gateway leaves no worker holding a GPU. Doing it here, at the top of the worker
process, keeps the gateway free of ``preexec_fn`` (unsafe in a process that has threads).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import sys

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Probes the gateway repeats several times a second while a worker starts, then every few seconds; an access
# line per probe would drown the gateway's log, which forwards ours, and the gateway logs every change of a
# probe's result itself. Liveness and readiness lines go whatever their status; info and models lines only when
# they succeed; every other request is logged.
_PROBE_LINE = re.compile(r'"GET /v1/(?:(?:health|ready) HTTP/[\d.]+" \d{3}|(?:info|models) HTTP/[\d.]+" 2\d\d)')


def exit_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when ``parent_pid`` (its parent) dies."""
    if sys.platform != "linux":
        log.warning("--parent-pid works on Linux only; this worker outlives its parent")
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before prctl: the signal will never come
        os.kill(os.getpid(), signal.SIGTERM)


class ProbeAccessFilter(logging.Filter):
    """Drops uvicorn access lines of successful probes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _PROBE_LINE.search(record.getMessage())


def quiet_probe_access_lines() -> None:
    logging.getLogger("uvicorn.access").addFilter(ProbeAccessFilter())
