"""Test-only fault injection: hold a call after its first step until a file says "go".

Tests that need a job to *stay* running (cancel it mid-run, watch it time out, see it in the queue as
"running") must not count on the machine being slow: a tiny model on a fast, idle CPU finishes 150 steps in
well under a second. With ``test_hold_dir`` set (``ABLEREFUSAL_WORKER_TEST_HOLD_DIR``, inherited by a
gateway's local workers), a call with a row whose prompt contains ``@hold:NAME@`` pauses right after step 1's
progress event until ``<test_hold_dir>/NAME`` exists, or the call is cancelled, or every held job is dropped.
With the setting unset (the default, and what every real install runs) this module does nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

_MARK = re.compile(r"@hold:([A-Za-z0-9_-]{1,64})@")
HOLD_STEP = 1
_POLL_S = 0.01


def hold_names(prompts: Iterable[str]) -> set[str]:
    return {m for p in prompts for m in _MARK.findall(p)}


def wait_for_release(folder: Path, cancelled: threading.Event, held: Callable[[], set[str]]) -> None:
    """Block until each name ``held()`` still returns has its release file, or the call is cancelled."""
    while not cancelled.is_set():
        if all((folder / name).exists() for name in held()):
            return
        cancelled.wait(_POLL_S)
