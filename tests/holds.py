"""Keep a job running until the test says so, instead of hoping the machine is slow enough.

Workers started with ``ABLEREFUSAL_WORKER_TEST_HOLD_DIR`` (a gateway's local workers inherit it) pause a call
whose prompt carries ``@hold:NAME@`` right after step 1, until ``<dir>/NAME`` exists or the call is
cancelled (``ablerefusal.worker.engine.holds``). A held job is observably running (status, step 1 progress)
and stays so for as long as the test needs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import TracebackType


class Hold:
    def __init__(self, folder: Path, name: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.name = name or uuid.uuid4().hex[:12]

    @property
    def env(self) -> dict[str, str]:
        """Environment for a worker (or a gateway whose local workers should honour holds)."""
        return {"ABLEREFUSAL_WORKER_TEST_HOLD_DIR": str(self.folder)}

    @property
    def marker(self) -> str:
        return f"@hold:{self.name}@"

    def prompt(self, text: str = "held") -> str:
        return f"{text} {self.marker}"

    def release(self) -> None:
        (self.folder / self.name).touch()

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Never leave a held call behind a failed test: it would occupy the worker for the next one.
        self.release()
