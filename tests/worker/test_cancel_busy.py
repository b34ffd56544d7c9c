"""Cancel a whole call mid-generation, drop one item of a multi-item call, refuse a concurrent call, and run the
next call while the last one's images are encoded."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body, images, run_call

from ablerefusal.protocol import WorkerEvent, parse_event
from ablerefusal.worker.service import WorkerService
from holds import Hold

STEPS = 20  # the calls acted on mid-run are held after step 1 (tests/holds.py), whatever the machine's speed


def held_body(hold: Hold, call_id: str) -> dict[str, Any]:
    return call_body(steps=STEPS, call_id=call_id, items=[{"job_id": "job-1", "prompt": hold.prompt(), "seeds": [42]}])


class Streamer(threading.Thread):
    """Reads one call's NDJSON stream in the background; ``progressed`` is set at the first progress event."""

    def __init__(self, client: TestClient, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.client, self.body = client, body
        self.events: list[WorkerEvent] = []
        self.progressed = threading.Event()
        self.seen: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.status: int | None = None

    def run(self) -> None:
        with self.client.stream("POST", "/v1/generate", json=self.body) as resp:
            self.status = resp.status_code
            for line in resp.iter_lines():
                if line:
                    event = parse_event(line)
                    self.events.append(event)
                    self.seen[event.type].set()
                    if event.type == "progress":
                        self.progressed.set()
        self.progressed.set()


def _start(client: TestClient, body: dict[str, Any]) -> Streamer:
    streamer = Streamer(client, body)
    streamer.start()
    assert streamer.progressed.wait(120)
    return streamer


def test_cancel_stops_the_call_at_the_next_step(worker_client: TestClient, hold: Hold) -> None:
    streamer = _start(worker_client, held_body(hold, "to-cancel"))
    resp = worker_client.post("/v1/generate/to-cancel/cancel", json={})
    assert resp.status_code == 200 and resp.json()["job_id"] is None
    streamer.join(120)
    last = streamer.events[-1]
    assert last.type == "error" and last.code == "cancelled" and last.retryable is False
    steps = [e.step for e in streamer.events if e.type == "progress"]
    assert steps == [1]  # stopped where it was held, not run to the end
    assert not images(streamer.events)
    # The device is free again.
    assert run_call(worker_client, call_body())[-1].type == "done"


def test_drop_one_item_keeps_the_others(worker_client: TestClient, hold: Hold) -> None:
    body = call_body(
        steps=STEPS,
        call_id="drop-one",
        items=[
            {"job_id": "keep", "prompt": "a boat", "seeds": [1]},
            # Only the item to drop is held: once it is dropped, the rest of the call runs to the end.
            {"job_id": "drop", "prompt": hold.prompt("a car"), "seeds": [2, 3]},
        ],
    )
    streamer = _start(worker_client, body)
    resp = worker_client.post("/v1/generate/drop-one/cancel", json={"job_id": "drop"})
    assert resp.status_code == 200 and resp.json()["job_id"] == "drop"
    streamer.join(120)
    kinds = [e.type for e in streamer.events]
    assert "item_cancelled" in kinds and kinds[-1] == "done"
    cancelled = next(e for e in streamer.events if e.type == "item_cancelled")
    assert cancelled.job_id == "drop"
    assert sorted(images(streamer.events)) == [("keep", 0)]
    later = [e for e in streamer.events[kinds.index("item_cancelled") :] if e.type == "progress"]
    assert [p.step for p in later] == list(range(2, STEPS + 1)) and all(p.job_ids == ["keep"] for p in later)


def test_dropping_every_item_cancels_the_call(worker_client: TestClient, hold: Hold) -> None:
    streamer = _start(worker_client, held_body(hold, "drop-all"))
    assert worker_client.post("/v1/generate/drop-all/cancel", json={"job_id": "job-1"}).status_code == 200
    streamer.join(120)
    assert streamer.events[-1].type == "error" and streamer.events[-1].code == "cancelled"


def test_second_concurrent_call_is_busy(worker_client: TestClient, hold: Hold) -> None:
    streamer = _start(worker_client, held_body(hold, "occupant"))
    try:
        resp = worker_client.post("/v1/generate", json=call_body())
        assert resp.status_code == 409
        error = resp.json()["error"]
        assert error["code"] == "busy" and error["retryable"] is True
        assert worker_client.get("/v1/info").json()["busy"] is True
    finally:
        worker_client.post("/v1/generate/occupant/cancel", json={})
        streamer.join(120)


def test_cancel_unknown_call_and_foreign_job(worker_client: TestClient, hold: Hold) -> None:
    resp = worker_client.post("/v1/generate/no-such-call/cancel", json={})
    assert resp.status_code == 404 and resp.json()["error"]["details"][0]["field"] == "call_id"
    streamer = _start(worker_client, held_body(hold, "mine"))
    try:
        resp = worker_client.post("/v1/generate/mine/cancel", json={"job_id": "not-in-call"})
        assert resp.status_code == 400 and resp.json()["error"]["details"][0]["field"] == "job_id"
        resp = worker_client.post("/v1/generate/mine/cancel", json={"job_id": 5})
        assert resp.status_code == 400 and resp.json()["error"]["details"][0]["field"] == "job_id"
    finally:
        worker_client.post("/v1/generate/mine/cancel", json={})
        streamer.join(120)


def test_next_call_runs_while_the_last_ones_images_are_encoded(
    worker_client: TestClient, worker_service: WorkerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first call's PNG encoding is held until the second call is over: that second call can only run if
    # `generated` comes once the device is free, before the first call's images.
    release = threading.Event()
    encode = worker_service._encode

    def held(control: Any, *args: Any) -> None:
        if control.call_id == "first":
            assert release.wait(120)
        encode(control, *args)

    monkeypatch.setattr(worker_service, "_encode", held)
    first = Streamer(worker_client, call_body(call_id="first"))
    first.start()
    try:
        assert first.seen["generated"].wait(120)
        second = run_call(
            worker_client, call_body(call_id="second", items=[{"job_id": "b", "prompt": "x", "seeds": [1]}])
        )
        assert [e.type for e in second][-2:] == ["image", "done"]
        assert not images(first.events)  # still encoding: held
    finally:
        release.set()
        first.join(120)
    kinds = [e.type for e in first.events]
    assert kinds.index("generated") < kinds.index("image") and kinds[-1] == "done"


def test_a_held_call_waits_at_step_one_until_released(worker_client: TestClient, hold: Hold) -> None:
    # The hold every "still running" test relies on: it pauses, and release (not time) ends the pause.
    streamer = _start(worker_client, held_body(hold, "held"))
    assert worker_client.get("/v1/info").json()["busy"] is True
    assert [e.step for e in streamer.events if e.type == "progress"] == [1]
    hold.release()
    streamer.join(120)
    assert [e.step for e in streamer.events if e.type == "progress"] == list(range(1, STEPS + 1))
    assert streamer.events[-1].type == "done" and sorted(images(streamer.events)) == [("job-1", 0)]
