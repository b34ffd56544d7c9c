"""Local workers: they get the gateway's whole model configuration and their token on stdin (not in argv), and
they exit with the gateway even when it is killed with SIGKILL."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ablerefusal.gateway.settings import ModelsSettings, Settings
from ablerefusal.gateway.workers.pool import local_worker_config
from ablerefusal.gateway.workers.supervisor import WorkerCommand
from ablerefusal.worker.settings import WorkerSettings, load_worker_settings


def test_a_local_worker_gets_every_model_setting_and_its_token(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        inference={"device": "cpu"},
        models={"hub_ids": ["org/repo"], "allow_pickle": True, "cache_size": 1},
    )
    command = WorkerCommand(config=local_worker_config(settings, "tok-123"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(command.stdin().decode()))
    worker = load_worker_settings(Path("-"))

    shared = [name for name in ModelsSettings.model_fields if name in WorkerSettings.model_fields]
    assert set(shared) >= {"hub_ids", "allow_pickle", "cache_size"}
    for name in shared:
        assert getattr(worker, name) == getattr(settings.models, name), name
    assert (worker.device, worker.models_dir, worker.token) == ("cpu", settings.storage.models_dir, "tok-123")
    argv = command.argv(8123)
    assert "tok-123" not in " ".join(argv)  # argv is readable by every local user; stdin is not
    assert argv[argv.index("--parent-pid") + 1] == str(os.getpid())


_PARENT = """
import asyncio, sys, httpx
from pathlib import Path
from ablerefusal.gateway.workers.supervisor import SupervisedProcess, WorkerCommand

async def main():
    config = {"inference": {"device": "cpu"}, "storage": {"models_dir": sys.argv[1]}}
    proc = SupervisedProcess("w", WorkerCommand(config=config), backoff_s=60, backoff_max_s=60, stop_timeout_s=5)
    await proc.start()
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(proc.url + "/v1/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    print(proc.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited; only waiting for whoever adopted it to reap it


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_local_worker_exits_when_its_gateway_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        assert not _gone(worker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 60
        while not _gone(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(worker_pid)
    finally:
        parent.kill()
