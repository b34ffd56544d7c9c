"""The loopback fleet (issue 13): PostgreSQL on 127.0.0.1:5432 (a schema of its own), SeaweedFS S3, two
gateways and three workers, every one a separate process, the workers shared by both gateways through
leases in the store.

Sixty tiny jobs (64x64, 2 steps) are submitted alternately to both gateways while gateway B and one worker
are killed with SIGKILL mid-run and then restarted. Afterwards: every job is completed, and completed once
(one "job completed" line in all the gateways' logs); every image is in the bucket and both gateways serve
it; no worker ever had two callers at once (each worker logs every call with its caller's gateway id, and a
warning when a call comes from one gateway while another's is still streaming); and a WebSocket client on
the surviving gateway A saw progress of jobs that B ran (B's dispatcher's events reach A only through
LISTEN/NOTIFY: A's followers poll the store only every 30 s here, and a job takes well under that).

A second test cancels, through one gateway, a job held on a worker the other gateway drives.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from gateway_procs import Gateway, make_gateway, wait_until
from websockets.sync.client import ClientConnection, connect

from holds import Hold
from procs import Proc, worker_proc
from seaweed import Seaweed, s3_env, seaweed_with_bucket

# Seven processes on a CI machine's two cores: the whole run takes minutes, not the default 300 s.
pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.fleet, pytest.mark.timeout(1800)]

PG_URL = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BUCKET = "ablerefusal-fleet-test"
TOKEN = "fleet-token-" + uuid.uuid4().hex
JOBS = 60
KILL_AFTER = 20  # jobs submitted before gateway B and a worker are killed
JOB = {"width": 64, "height": 64, "steps": 2, "batch_size": 1}
WAIT_S = 300.0


@dataclass
class Fleet:
    a: Gateway
    b: Gateway
    workers: list[Proc]
    prefix: str
    seaweed: Seaweed
    hold: Hold
    logs: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with seaweed_with_bucket(tmp_path_factory.mktemp("seaweed"), BUCKET) as server:
        yield server


def gateway_env(server: Seaweed, prefix: str, serve: str) -> dict[str, str]:
    return {
        **s3_env(server, BUCKET, prefix, serve),
        "ABLEREFUSAL_WORKERS__TOKEN": TOKEN,
        # Short leases so the kills resolve in seconds; renewals keep pace on a loaded 2-core machine.
        "ABLEREFUSAL_WORKERS__LEASE_S": "4",
        "ABLEREFUSAL_QUEUE__LEASE_S": "6",
        # Followers poll the store every 20 x this = 30 s: live events of the other gateway's jobs arrive
        # through NOTIFY or not at all within a job's lifetime.
        "ABLEREFUSAL_QUEUE__POLL_INTERVAL_S": "1.5",
    }


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: Path, seaweed: Seaweed, pg_schema: str
) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    hold = Hold(root / "holds")
    workers = [worker_proc(tiny_models, root / f"worker-{n}.log", "--token", TOKEN, env=hold.env) for n in range(3)]
    prefix = f"run-{uuid.uuid4().hex[:8]}"
    database = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    urls = [arg for w in workers for arg in ("--worker-url", w.url)]
    a = make_gateway(root / "a", None, "--no-local-worker", "--database-url", database, *urls,
                     env=gateway_env(seaweed, prefix, "redirect"))  # fmt: skip
    b = make_gateway(root / "b", None, "--no-local-worker", "--database-url", database, *urls,
                     env=gateway_env(seaweed, prefix, "stream"))  # fmt: skip
    for worker in workers:
        worker.ready_path = "/v1/health"  # /v1/ready wants the token; the gateways' probes wait for ready
    try:
        start_all([*(w.start for w in workers), lambda: a.start(wait_ready=False), lambda: b.start(wait_ready=False)])
        yield Fleet(a=a, b=b, workers=workers, prefix=prefix, seaweed=seaweed, hold=hold)
    finally:
        hold.release()
        for gw in (b, a):
            gw.stop()
        for worker in workers:
            worker.stop()


def start_all(starts: list[Callable[[], object]]) -> None:
    """Start processes side by side (each start waits for its process to answer)."""
    errors: list[BaseException] = []

    def run(start: Callable[[], object]) -> None:
        try:
            start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(start,)) for start in starts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# -- reading the fleet -------------------------------------------------------------------------------------


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return lines


def gateway_ids(gw: Gateway) -> list[str]:
    """Ids of every incarnation of a gateway, from its log."""
    starts = [e["msg"] for e in log_lines(gw.root / "gateway.log") if e["msg"].startswith("gateway ")]
    return [m.split()[1] for m in starts if m.endswith(" starting")]


def get_json(url: str) -> Any:
    """GET on a fresh connection, retried while the gateway is too loaded to answer (seven processes share
    two cores here): a refused or dropped request is no finding of this test, a wrong answer is."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            answer = httpx.get(url, timeout=30)
            answer.raise_for_status()
            return answer.json()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def get_bytes(url: str) -> bytes:
    """Like ``get_json``, for an image (following a redirect to the bucket)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            answer = httpx.get(url, timeout=30, follow_redirects=True)
            answer.raise_for_status()
            return answer.content
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def holders(gw: Gateway) -> dict[str, str | None]:
    """Worker URL → the gateway id holding its lease, as the store says (through ``gw``)."""
    return {w["url"]: w["held_by"] for w in get_json(f"{gw.url}/api/v1/workers")["workers"]}


def wait_done(gw: Gateway, job_id: str) -> dict[str, Any]:
    """The job once it is terminal, polled through ``gw``."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(get_json(f"{gw.url}/api/v1/generate/{job_id}"))
        return found["status"] in {"completed", "failed", "cancelled", "timed_out"}

    wait_until(done, None, f"job {job_id} to finish", WAIT_S)
    return found


def worker_calls(worker: Proc) -> list[tuple[str, list[str]]]:
    """(caller, job ids) of every call the worker accepted, in order, across its restarts."""
    calls = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        marker = line.find(" from caller ")
        if "call " in line and marker != -1 and ": jobs " in line:
            caller, _, jobs = line[marker + len(" from caller ") :].partition(": jobs ")
            calls.append((caller.strip(), jobs.strip().split(",")))
    return calls


def overlaps(worker: Proc) -> list[str]:
    return [line for line in worker.log_path.read_text(errors="replace").splitlines() if "two callers at once" in line]


class LiveWatcher:
    """A WebSocket client on one gateway, subscribing to jobs as they are submitted, keeping every frame."""

    def __init__(self, gw: Gateway) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(f"ws://127.0.0.1:{gw.port}/api/v1/ws", open_timeout=30)
        )
        self.frames: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                self.frames.append(json.loads(message))
        except Exception:  # the connection closes at the end of the test
            return

    def follow(self, job_id: str) -> None:
        self.ws.send(json.dumps({"type": "subscribe", "job_ids": [job_id], "previews": False}))

    def close(self) -> None:
        self._stack.close()
        self._reader.join(10)

    def progress_of(self) -> set[str]:
        return {f["job_id"] for f in self.frames if f.get("type") == "progress"}

    def errors(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "error"]


def submit(gw: Gateway, n: int) -> str:
    """Submit job ``n`` to ``gw``, retrying (same Idempotency-Key) while the gateway is down or restarting."""
    body = {**JOB, "prompt": f"fleet job {n}", "seed": 1000 + n}
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            answer = httpx.post(
                f"{gw.url}/api/v1/generate", json=body, headers={"Idempotency-Key": f"fleet-{n}"}, timeout=30
            )
            if answer.status_code == 202:
                job_id: str = answer.json()["id"]
                return job_id
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"job {n} could not be submitted to {gw.url}")
        time.sleep(0.2)


def objects(server: Seaweed, prefix: str) -> dict[str, bytes]:
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    listed: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/", **token)
        listed += page.get("Contents", [])
        if not page.get("IsTruncated"):
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    return {
        o["Key"].removeprefix(f"{prefix}/"): client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


def both_gateways_drive_workers(fleet: Fleet) -> bool:
    """Both gateways have logged their ids and each holds at least one worker's lease."""
    a_ids, b_ids = gateway_ids(fleet.a), gateway_ids(fleet.b)
    held = set(holders(fleet.a).values())
    return bool(a_ids and b_ids) and {a_ids[-1], b_ids[-1]} <= held


# -- the tests ----------------------------------------------------------------------------------------------


def test_a_cancel_sent_to_one_gateway_stops_the_job_on_the_others_worker(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    wait_until(lambda: both_gateways_drive_workers(fleet), a.proc, "both gateways to hold worker leases", WAIT_S)
    with a.client() as on_a, b.client() as on_b:
        body = {**JOB, "prompt": fleet.hold.prompt("held in the fleet")}
        job_id = on_a.post("/api/v1/generate", json=body).json()["id"]
        url = f"{a.url}/api/v1/generate/{job_id}"
        wait_until(lambda: get_json(url)["step"] >= 1, None, "the held step", WAIT_S)
        running = get_json(url)
        assert running["status"] == "running"
        driver = holders(a)[running["worker_id"]]
        # Cancel through the gateway that does NOT drive the worker running the job.
        other, other_client = (b, on_b) if driver == gateway_ids(a)[-1] else (a, on_a)
        assert driver != gateway_ids(other)[-1]
        assert other_client.post(f"/api/v1/generate/{job_id}/cancel").status_code in (200, 202)
        # The hold ends only when the worker drops the call: a cancelled job here was stopped on the worker.
        job = wait_done(a, job_id)
        assert job["status"] == "cancelled", job
        assert job["step"] == 1 and job["results"] == []


def test_sixty_jobs_survive_a_killed_gateway_and_worker(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    wait_until(lambda: both_gateways_drive_workers(fleet), a.proc, "both gateways to hold worker leases", WAIT_S)
    watcher = LiveWatcher(a)
    job_ids: list[str] = []
    killed_worker: Proc | None = None
    try:
        for n in range(JOBS):
            gw = a if n % 2 == 0 else b
            job_ids.append(submit(gw, n))
            watcher.follow(job_ids[-1])
            if n + 1 == KILL_AFTER:
                killed_worker = kill_mid_run(fleet)
        jobs = [wait_done(a, job_id) for job_id in job_ids]
    finally:
        watcher.close()
    assert killed_worker is not None

    # Every job completed, each once.
    assert [j["status"] for j in jobs] == ["completed"] * JOBS, [j for j in jobs if j["status"] != "completed"]
    assert all([r["index"] for r in j["results"]] == [0] for j in jobs)
    completions = Counter(
        e.get("job_id") for gw in (a, b) for e in log_lines(gw.root / "gateway.log") if e.get("msg") == "job completed"
    )
    assert {job_id: completions[job_id] for job_id in job_ids} == dict.fromkeys(job_ids, 1)

    # Every image is in the bucket, once, and both gateways serve it.
    stored = objects(fleet.seaweed, fleet.prefix)
    assert sorted(stored) == sorted(f"{job_id}/0.png" for job_id in job_ids)
    for job in jobs:
        path = job["results"][0]["image_url"]
        key = path.removeprefix("/outputs/")
        for gw in (a, b):  # A redirects to a presigned URL, B streams the bytes itself
            assert get_bytes(gw.url + path) == stored[key], (gw.url, path)

    # No worker ever had two callers at once, and the callers were the gateways.
    a_ids, b_ids = gateway_ids(a), gateway_ids(b)
    assert len(a_ids) == 1 and len(b_ids) == 2  # B restarted once, as a new gateway id
    callers_by_worker = {w.url: {c for c, _ in worker_calls(w)} for w in fleet.workers}
    for worker in fleet.workers:
        assert overlaps(worker) == [], worker.log_path
        assert callers_by_worker[worker.url] <= {*a_ids, *b_ids}, callers_by_worker
    # Leases changed hands (B's death, B's return): some worker served more than one gateway.
    assert any(len(callers) >= 2 for callers in callers_by_worker.values()), callers_by_worker
    ran_on: dict[str, set[str]] = defaultdict(set)
    for worker in fleet.workers:
        for caller, ids in worker_calls(worker):
            for job_id in ids:
                ran_on[job_id].add(caller)
    assert all(ran_on[job_id] for job_id in job_ids)

    # The WebSocket client on A saw live progress of jobs B's dispatcher ran.
    run_by_b = {job_id for job_id in job_ids if ran_on[job_id] & set(b_ids)}
    assert run_by_b, "B ran none of the jobs"
    assert watcher.progress_of() & run_by_b, (len(run_by_b), len(watcher.progress_of()))
    assert watcher.errors() == []
    terminal = {f["job_id"] for f in watcher.frames if f.get("type") == "status" and f.get("terminal")}
    assert terminal == set(job_ids)


def kill_mid_run(fleet: Fleet) -> Proc:
    """SIGKILL gateway B while it runs a call and a worker A drives; wait until A holds every worker (B's
    leases lapsed and A took them), then restart both."""
    a, b = fleet.a, fleet.b
    b_id = gateway_ids(b)[-1]
    a_id = gateway_ids(a)[-1]

    def b_is_running_a_job() -> bool:
        held = holders(a)
        running = get_json(f"{a.url}/api/v1/queue")["running"]
        return any(held.get(job.get("worker_id")) == b_id for job in running)

    wait_until(b_is_running_a_job, None, "gateway B to run a job", WAIT_S)
    assert b.proc is not None
    b.proc.kill9()
    victim = next(w for w in fleet.workers if holders(a).get(w.url) == a_id)
    victim.kill9()
    wait_until(lambda: all(h == a_id for h in holders(a).values()), a.proc, "A to take B's workers", WAIT_S)
    start_all([victim.start, lambda: b.start(wait_ready=False)])
    return victim
