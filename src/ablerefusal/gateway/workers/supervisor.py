"""Local worker processes: spawn, forward logs, restart after a crash with backoff, stop cleanly.

Modelled on text-generation-inference's launcher: the gateway owns its children's lifetime; a child that
dies unexpectedly is restarted after a delay that doubles per consecutive crash (capped), and shutdown is
SIGTERM, then SIGKILL after ``stop_timeout_s``. A child gets its configuration (and its token) as YAML on
stdin, never in its argv where any local user could read it, and the gateway's pid, so that it exits with the
gateway even when the gateway is killed with SIGKILL (the worker sets its own parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

log = logging.getLogger(__name__)
worker_log = logging.getLogger("ablerefusal.worker.child")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now; the worker binds it a moment later (a narrow race, retried on
    restart with a fresh port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerCommand:
    """How to start one local worker: ``config`` is a config file's content (the gateway's shape, see
    ``pool.local_worker_config``), read by the worker from stdin."""

    config: dict[str, Any]
    extra_args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES pinning it to one GPU

    def argv(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "ablerefusal", "worker",
            "--host", self.host, "--port", str(port),
            "--config", "-", "--parent-pid", str(os.getpid()),
            *self.extra_args,
        ]  # fmt: skip

    def stdin(self) -> bytes:
        return yaml.safe_dump(self.config).encode()


class SupervisedProcess:
    """One local worker process and the task that keeps it alive."""

    def __init__(
        self,
        worker_id: str,
        command: WorkerCommand,
        *,
        backoff_s: float,
        backoff_max_s: float,
        stop_timeout_s: float,
        port: int | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.command = command
        self.port = port or free_port(command.host)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self.restarts = 0
        self.last_error: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._consecutive_crashes = 0

    @property
    def url(self) -> str:
        return f"http://{self.command.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.worker_id}")
        await self._started.wait()

    def mark_healthy(self) -> None:
        """Called by the pool once the worker answered ready: the next crash starts the backoff afresh."""
        self._consecutive_crashes = 0

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # The token comes with the config on stdin; one in the environment would override it (env beats file).
        env.pop("ABLEREFUSAL_WORKER_TOKEN", None)
        env.update(self.command.env)
        proc = await asyncio.create_subprocess_exec(
            *self.command.argv(self.port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            # The gateway's Ctrl-C must not reach the child: the gateway stops it, in order.
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(self.command.stdin())
        with contextlib.suppress(ConnectionError):  # a child that died at once: its exit code says why
            await proc.stdin.drain()
        proc.stdin.close()
        log.info("started worker pid %s on %s", proc.pid, self.url, extra={"worker_id": self.worker_id})
        return proc

    async def _forward_logs(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                worker_log.info("%s", line, extra={"worker_id": self.worker_id})

    async def _run(self) -> None:
        while not self._stopping:
            try:
                self.process = await self._spawn()
            except OSError as exc:
                self.last_error = f"spawn failed: {exc}"
                log.error("%s", self.last_error, extra={"worker_id": self.worker_id})
                self._started.set()
                await self._sleep_backoff()
                continue
            self._started.set()
            forward = asyncio.create_task(self._forward_logs(self.process))
            code = await self.process.wait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(forward, timeout=2)
            if self._stopping:
                return
            self.last_error = f"worker exited with code {code}"
            log.warning("%s; restarting", self.last_error, extra={"worker_id": self.worker_id})
            await self._sleep_backoff()
            if self._stopping:
                return
            self.restarts += 1
            # A crash can leave the port in TIME_WAIT or taken; a fresh one avoids a restart loop on it.
            self.port = free_port(self.command.host)

    async def _sleep_backoff(self) -> None:
        delay = min(self.backoff_s * (2**self._consecutive_crashes), self.backoff_max_s)
        self._consecutive_crashes += 1
        await asyncio.sleep(delay)

    async def stop(self) -> None:
        self._stopping = True
        proc = self.process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=self.stop_timeout_s)
            except TimeoutError:
                log.warning("worker ignored SIGTERM; killing", extra={"worker_id": self.worker_id})
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
