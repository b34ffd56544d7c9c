"""Loopback load benchmark with locust: jobs/s and queue wait for 1 gateway, then 2, on one PostgreSQL store
with the same remote workers.

    .venv/bin/python benchmarks/load.py [--workers 2] [--jobs 24] [--users 6] [--steps 2] [--size 64]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--phase-timeout-s 600]

What runs, all as real processes on 127.0.0.1: ``--workers`` ``ablerefusal worker`` processes (CPU, the tiny
random-weight SD 1.5 model made by ``ablerefusal.testing.tiny``), and gateways with no local worker that
drive all of them by URL (``--worker-url``), sharing one throw-away PostgreSQL schema (``search_path`` in the
database URL; dropped at the end).

1. "1 gateway": gateway A alone; locust's ``--users`` users submit ``--jobs`` jobs in all, each user one at a
   time with ``POST /api/v1/generate?wait=…`` (synchronous mode: the answer is the finished job).
2. "2 gateways": gateway B starts on the same schema with the same worker URLs; the users alternate between
   A and B (user i talks to gateway i mod 2) for another ``--jobs`` jobs.

Each phase prints, from the finished jobs themselves: jobs/s (jobs ÷ (last ``finished_at`` − first
``created_at``)), the p50/p95 queue wait (``started_at`` − ``created_at``: how long a job waited for a
worker), locust's p50/p95 request time, and how many jobs each gateway's users submitted; then the ratios
2 gateways / 1 gateway.

Workers are leased to one gateway at a time through the store (``gateway/fleet/registry.py``): when B starts,
the gateways split the workers by fair share, so the 2-gateway phase measures two dispatchers each driving
its own workers from one queue, never two callers on one worker.

Bounded: a fixed number of jobs per phase, and a phase that has not finished within ``--phase-timeout-s`` is
stopped and reported as such. Figures from a shared 2-core machine are noisy; compare the ratio, not the
absolute numbers, and rerun before drawing conclusions. Not part of the test suite.
"""

from __future__ import annotations

# locust runs on gevent, which must patch the standard library before anything else imports it.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import psycopg  # noqa: E402
from locust import HttpUser, constant, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.exception import StopUser  # noqa: E402

from platform_util import free_port, wait_ready  # noqa: E402

START_TIMEOUT_S = 180.0


@dataclass
class Proc:
    """A child process with its log file; stopped SIGTERM, then SIGKILL after a grace period."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str

    def stop(self, grace: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def worker_calls(workers: list[Proc]) -> int:
    """Generation calls the workers have answered so far, from their access logs. A call refused as busy is
    one too (its refusal is an event inside a 200 stream), so calls beyond what the jobs needed show contention."""
    return sum(w.log.read_text(errors="replace").count('"POST /v1/generate HTTP/1.1"') for w in workers)


def spawn(name: str, argv: list[str], work: Path, port: int, env: dict[str, str] | None = None) -> Proc:
    log = work / f"{name}.log"
    popen = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    return Proc(name, popen, log, f"http://127.0.0.1:{port}")


def start_worker(index: int, models: Path, work: Path) -> Proc:
    port = free_port()
    argv = [
        sys.executable, "-m", "ablerefusal", "worker", "--host", "127.0.0.1", "--port", str(port),
        "--device", "cpu", "--models-dir", str(models), "--worker-id", f"load-{index}",
    ]  # fmt: skip
    # One compute thread each: CPU workers stand in for GPUs here, and several of them each running torch on
    # every core of a small machine fight over the cores (a call then takes seconds instead of tenths),
    # which would measure that fight rather than the gateways.
    return spawn(f"worker-{index}", argv, work, port, {"OMP_NUM_THREADS": "1"})


def start_gateway(name: str, database_url: str, workers: list[Proc], models: Path, work: Path) -> Proc:
    port = free_port()
    argv = [
        sys.executable, "-m", "ablerefusal", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--no-local-worker", "--database-url", database_url, "--models-dir", str(models),
        "--output-dir", str(work / f"outputs-{name}"), "--input-dir", str(work / f"inputs-{name}"),
    ]  # fmt: skip
    for worker in workers:
        argv += ["--worker-url", worker.url]
    return spawn(f"gateway-{name}", argv, work, port)


# --- the locust side -----------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured run: the gateways its users talk to and the jobs they got back."""

    hosts: list[str]
    jobs: int
    body: dict[str, Any]
    tickets: itertools.count[int] = field(default_factory=itertools.count)
    finished: list[dict[str, Any]] = field(default_factory=list)
    per_host: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _users: itertools.count[int] = field(default_factory=itertools.count)

    def host_for_next_user(self) -> str:
        return self.hosts[next(self._users) % len(self.hosts)]

    def answered(self) -> int:
        return len(self.finished) + len(self.failures)


PHASE: Phase | None = None


class JobSubmitter(HttpUser):
    """Submits jobs one after another in synchronous mode until the phase's tickets are gone."""

    wait_time = constant(0)
    host = "http://unset"  # replaced per user before the HTTP session is made

    def __init__(self, environment: Environment) -> None:
        assert PHASE is not None
        self.host = PHASE.host_for_next_user()
        super().__init__(environment)

    @task
    def one_job(self) -> None:
        assert PHASE is not None
        ticket = next(PHASE.tickets)
        if ticket >= PHASE.jobs:
            raise StopUser()
        body = {**PHASE.body, "prompt": f"{PHASE.body['prompt']}, variant {ticket}", "seed": 1000 + ticket}
        with self.client.post(
            "/api/v1/generate", params={"wait": 900}, json=body, name="generate (wait)", catch_response=True
        ) as answer:
            if answer.status_code == 200 and answer.json().get("status") == "completed":
                PHASE.finished.append(answer.json())
                PHASE.per_host[self.host] = PHASE.per_host.get(self.host, 0) + 1
            else:
                PHASE.failures.append(f"{answer.status_code} {answer.text[:300]}")
                answer.failure(f"job not completed: {answer.status_code}")


@dataclass
class Figures:
    jobs: int
    failed: int
    jobs_per_s: float
    wait_p50: float
    wait_p95: float
    run_p50: float
    request_p50: float
    request_p95: float
    per_host: dict[str, int]
    timed_out: bool
    worker_calls: int = 0


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_phase(phase: Phase, users: int, timeout_s: float) -> Figures:
    global PHASE
    PHASE = phase
    env = Environment(user_classes=[JobSubmitter], events=events)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    deadline = time.monotonic() + timeout_s
    while phase.answered() < phase.jobs and time.monotonic() < deadline:
        gevent.sleep(0.2)
    timed_out = phase.answered() < phase.jobs
    runner.quit()
    total = env.stats.total
    jobs = phase.finished
    if not jobs:
        raise RuntimeError(f"no job completed; failures: {phase.failures[:3]}")
    created = [_ts(j["created_at"]) for j in jobs]
    waits = [_ts(j["started_at"]) - _ts(j["created_at"]) for j in jobs]
    runs = [_ts(j["finished_at"]) - _ts(j["started_at"]) for j in jobs]
    span = max(_ts(j["finished_at"]) for j in jobs) - min(created)
    return Figures(
        jobs=len(jobs),
        failed=len(phase.failures),
        jobs_per_s=len(jobs) / span,
        wait_p50=percentile(waits, 50),
        wait_p95=percentile(waits, 95),
        run_p50=percentile(runs, 50),
        request_p50=total.get_response_time_percentile(0.5) / 1000,
        request_p95=total.get_response_time_percentile(0.95) / 1000,
        per_host=dict(phase.per_host),
        timed_out=timed_out,
    )


def report(label: str, f: Figures) -> None:
    hosts = ", ".join(f"{host}: {n}" for host, n in sorted(f.per_host.items()))
    print(
        f"{label}: {f.jobs} jobs completed ({f.failed} failed{', TIMED OUT' if f.timed_out else ''}), "
        f"{f.jobs_per_s:.3f} jobs/s, queue wait p50 {f.wait_p50:.2f} s / p95 {f.wait_p95:.2f} s, "
        f"run p50 {f.run_p50:.2f} s, request p50 {f.request_p50:.2f} s / p95 {f.request_p95:.2f} s, "
        f"{f.worker_calls} worker calls  [{hosts}]",
        flush=True,
    )


# --- orchestration -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="worker processes shared by the gateways")
    ap.add_argument("--jobs", type=int, default=24, help="jobs per phase")
    ap.add_argument("--users", type=int, default=6, help="concurrent locust users (each one job at a time)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--phase-timeout-s", type=float, default=600.0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="load-"))
    models = work / "models"
    models.mkdir()
    # In a child process: this one is gevent-patched and never needs torch itself.
    code = "import sys; from pathlib import Path; from ablerefusal.testing.tiny import make_tiny; "
    code += "print(make_tiny(Path(sys.argv[1]), 'sd15', 'diffusers').name)"
    model = subprocess.run([sys.executable, "-c", code, str(models)], check=True, capture_output=True, text=True)
    model_id = model.stdout.strip().splitlines()[-1]
    body = {"prompt": "a lighthouse under load", "model": model_id, "width": args.size, "height": args.size,
            "steps": args.steps, "sampler": "euler_a"}  # fmt: skip

    schema = f"bench_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    database_url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
    procs: list[Proc] = []
    try:
        workers = [start_worker(i, models, work) for i in range(args.workers)]
        procs += workers
        for w in workers:
            wait_ready(f"{w.url}/v1/ready", w.popen, w.log, START_TIMEOUT_S)
        a = start_gateway("a", database_url, workers, models, work)
        procs.append(a)
        wait_ready(f"{a.url}/api/v1/ready", a.popen, a.log, START_TIMEOUT_S)
        print(f"{args.workers} workers, {args.users} users, {args.jobs} jobs per phase, "
              f"{args.size}x{args.size} {args.steps} steps; logs in {work}", flush=True)  # fmt: skip
        # Before anything is measured, every worker loads the model and runs the coalesced batch sizes the
        # phases will send (a batch size's first call on CPU is several times slower): as many users as the
        # phases, three rounds of them. A warm-up of fewer users left phase 1 paying for phase 2's warm-up.
        warm = Phase([a.url], args.users * 3, body)
        run_phase(warm, args.users, args.phase_timeout_s)

        calls = worker_calls(workers)
        one = run_phase(Phase([a.url], args.jobs, body), args.users, args.phase_timeout_s)
        one.worker_calls, calls = worker_calls(workers) - calls, worker_calls(workers)
        report("1 gateway ", one)
        b = start_gateway("b", database_url, workers, models, work)
        procs.append(b)
        wait_ready(f"{b.url}/api/v1/ready", b.popen, b.log, START_TIMEOUT_S)
        calls = worker_calls(workers)
        two = run_phase(Phase([a.url, b.url], args.jobs, body), args.users, args.phase_timeout_s)
        two.worker_calls = worker_calls(workers) - calls
        report("2 gateways", two)
        print(
            f"ratio 2/1: jobs/s {two.jobs_per_s / one.jobs_per_s:.2f}, "
            f"queue wait p50 {two.wait_p50 / one.wait_p50 if one.wait_p50 else float('nan'):.2f}, "
            f"p95 {two.wait_p95 / one.wait_p95 if one.wait_p95 else float('nan'):.2f}",
            flush=True,
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
