"""A worker answers probes at once while its model scan blocks on the disk: the scan runs off the event loop.

The scan is held deterministically on a named pipe posing as a checkpoint (reading its header blocks until the
test writes), and a folder of large checkpoints is hashed once the pipe is released. ``/v1/health`` must answer
within 100 ms (the issue's bound) while the scan is held, and answer throughout the hashing.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from procs import worker_proc

BIG_FILE_BYTES = 200 * 2**20  # sparse: hashed in full, no disk used
BIG_FILES = 6


def _wait_for_reader(fifo: Path, timeout: float = 60.0) -> int:
    """A write end of ``fifo``, once the worker has it open for reading (its scan is then blocked on it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _EndOfFile(threading.Thread):
    """Once released, every reader that opens the pipe gets its end of file at once, however many times the
    scan opens it (header read, pickle sniff, hashing): a writer is opened and closed for each."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader right now
                    raise
                self.done.wait(0.01)
                continue
            os.close(fd)


def _health_latencies(url: str, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        assert httpx.get(url + "/v1/health", timeout=5).status_code == 200
        latencies.append(time.perf_counter() - start)
    return latencies


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(response=fn()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize("trigger", ["models", "generate"])
def test_health_answers_while_the_model_scan_blocks(tiny_sd15_single_file: Path, tmp_path: Path, trigger: str) -> None:
    models = tmp_path / "models"
    models.mkdir()
    with worker_proc(models, tmp_path / "worker.log").start() as proc:
        for n in range(BIG_FILES):
            big = models / f"big-{n}.safetensors"
            shutil.copy(tiny_sd15_single_file, big)
            with big.open("r+b") as fh:
                fh.truncate(BIG_FILE_BYTES)
        fifo = models / "0-held.safetensors"  # scanned first: files are scanned by name
        os.mkfifo(fifo)
        if trigger == "models":
            thread, out = _in_thread(lambda: httpx.get(proc.url + "/v1/models", timeout=120))
        else:
            body = {"model": "0-held", "items": [{"job_id": "j", "prompt": "p", "seeds": [1]}]}
            thread, out = _in_thread(lambda: httpx.post(proc.url + "/v1/generate", json=body, timeout=120))

        writer = _wait_for_reader(fifo)  # held: the worker's scan is blocked reading the pipe
        held = _health_latencies(proc.url, 5)
        assert thread.is_alive()  # still held while health answered
        # Let the scan past the pipe: what it reads is no checkpoint.
        os.write(writer, b"not a checkpoint")
        os.close(writer)
        feeder = _EndOfFile(fifo)
        feeder.start()
        while thread.is_alive():  # the big checkpoints are being hashed now
            _health_latencies(proc.url, 1)
        thread.join()
        fifo.unlink()  # later scans (and the worker's shutdown) never meet the pipe again
        feeder.done.set()
        feeder.join()

    assert min(held) < 0.1, held
    response = out["response"]
    if trigger == "models":
        listed = {m["id"]: m for m in response.json()["models"]}
        assert all(listed[f"big-{n}"]["sha256"] for n in range(BIG_FILES))
        assert "0-held" not in listed
    else:
        assert response.status_code == 404 and "was refused" in response.json()["error"]["message"]
