"""GET /api/v1/ws on a real gateway process (one supervised local worker, tiny model), driven by a real
WebSocket client (``websockets``): the same events as SSE, the key checked at the handshake, bad messages
answered with an error frame while the connection and its other subscriptions stay up."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_procs import Gateway, make_gateway, wait_job, wait_until
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from holds import Hold

pytestmark = pytest.mark.integration

KEY = "ws-test-key"
OTHER_KEY = "ws-other-key"
ADMIN_KEY = "ws-admin-key"
STUDIO = "http://studio.example"
SMALL: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 3}
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def hold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("holds")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path, hold_dir: Path) -> Iterator[Gateway]:
    env = {
        **Hold(hold_dir).env,
        "ABLEREFUSAL_SERVER__ENABLE_CORS": "true",
        "ABLEREFUSAL_SERVER__CORS_ORIGINS": json.dumps([STUDIO]),
        "ABLEREFUSAL_AUTH__ADMIN_KEYS": json.dumps([ADMIN_KEY]),
    }
    keys = ["--api-key", KEY, "--api-key", OTHER_KEY]
    gateway = make_gateway(tmp_path_factory.mktemp("ws"), tiny_models, "--device", "cpu", *keys, env=env)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with gw.client(headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


@pytest.fixture(scope="module")
def finished(gw: Gateway) -> dict[str, Any]:
    """One completed job (KEY's), for the tests that only need a job to subscribe to."""
    with gw.client(headers={"Authorization": f"Bearer {KEY}"}) as c:
        return wait_job(c, c.post("/api/v1/generate", json={**SMALL, "steps": 1}).json()["id"])


@pytest.fixture
def hold(hold_dir: Path) -> Iterator[Hold]:
    with Hold(hold_dir) as held:
        yield held


def ws_url(gw: Gateway, query: str = "") -> str:
    return f"ws://127.0.0.1:{gw.port}/api/v1/ws{query}"


def open_ws(gw: Gateway, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("additional_headers", {"Authorization": f"Bearer {KEY}"})
    return connect(ws_url(gw), open_timeout=TIMEOUT_S, **kwargs)


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=TIMEOUT_S)
    assert isinstance(frame, str), "frames are JSON text"
    decoded: dict[str, Any] = json.loads(frame)
    return decoded


def until_terminal(ws: ClientConnection, job_id: str) -> list[dict[str, Any]]:
    """This job's frames up to its terminal status event (frames of other jobs fail the test)."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = recv(ws)
        assert frame.get("job_id") == job_id, frame
        frames.append(frame)
        if frame["type"] == "status" and frame["terminal"]:
            return frames


def sse_events(client: httpx.Client, job_id: str, out: list[dict[str, Any]], subscribed: threading.Event) -> None:
    with client.stream("GET", f"/api/v1/generate/{job_id}/events", timeout=TIMEOUT_S) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line.split(":", 1)[1]))
                subscribed.set()  # the first event is the snapshot, sent once the stream follows the job


def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Previews are images of the latents, superseded by the next one and dropped for slow readers: the
    # contract is about progress, images and status.
    return [e for e in events if e["type"] != "preview"]


def wait_step(client: httpx.Client, job_id: str) -> None:
    wait_until(lambda: client.get(f"/api/v1/generate/{job_id}").json()["step"] >= 1, None, "the job's first step")


def test_streams_the_same_events_as_sse(gw: Gateway, client: httpx.Client, hold: Hold) -> None:
    job_id = client.post("/api/v1/generate", json={**SMALL, "prompt": hold.prompt("ws")}).json()["id"]
    wait_step(client, job_id)
    sse: list[dict[str, Any]] = []
    subscribed = threading.Event()
    reader = threading.Thread(target=sse_events, args=(client, job_id, sse, subscribed), daemon=True)
    reader.start()
    with open_ws(gw) as ws:
        ws.send(json.dumps({"type": "subscribe", "job_ids": [job_id]}))
        first = recv(ws)
        assert first["type"] == "status" and first["status"] == "running" and first["terminal"] is False
        assert subscribed.wait(TIMEOUT_S)
        hold.release()
        frames = [first, *until_terminal(ws, job_id)]
    reader.join(TIMEOUT_S)
    assert not reader.is_alive()

    assert comparable(frames) == comparable(sse)
    kinds = [f["type"] for f in comparable(frames)]
    assert kinds[0] == "status" and kinds[-1] == "status" and "image" in kinds
    assert [f["step"] for f in frames if f["type"] == "progress"][-1] == SMALL["steps"]
    assert frames[-1]["job"]["status"] == "completed"
    assert frames[-1]["job"] == client.get(f"/api/v1/generate/{job_id}").json()


def test_finished_job_gets_its_snapshot_and_the_stream_ends(gw: Gateway, client: httpx.Client) -> None:
    job_id = client.post("/api/v1/generate", json={**SMALL, "batch_size": 2}).json()["id"]
    job = wait_job(client, job_id)
    with open_ws(gw) as ws:
        ws.send(json.dumps({"type": "subscribe", "job_ids": [job_id], "previews": False}))
        frames = until_terminal(ws, job_id)
    assert [f["type"] for f in frames] == ["image", "image", "status"]
    assert [f["result"] for f in frames[:2]] == job["results"]
    assert frames[-1]["job"] == job


def test_several_jobs_on_one_connection_and_unsubscribe(gw: Gateway, client: httpx.Client, hold_dir: Path) -> None:
    with Hold(hold_dir) as dropped, Hold(hold_dir) as kept:
        dropped_id = client.post("/api/v1/generate", json={**SMALL, "prompt": dropped.prompt()}).json()["id"]
        # Other steps: not coalesced into the dropped job's call, so each hold holds only its own job.
        kept_id = client.post("/api/v1/generate", json={**SMALL, "steps": 2, "prompt": kept.prompt()}).json()["id"]
        wait_step(client, dropped_id)
        with open_ws(gw) as ws:
            ws.send(json.dumps({"type": "subscribe", "job_ids": [dropped_id]}))
            assert recv(ws)["status"] == "running"
            ws.send(json.dumps({"type": "unsubscribe", "job_ids": [dropped_id, "never-subscribed"]}))
            # Frames queued before the unsubscribe was read may still come; none may come after its answer.
            while (frame := recv(ws))["type"] != "unsubscribed":
                assert frame["job_id"] == dropped_id, frame
            assert frame == {"type": "unsubscribed", "job_ids": [dropped_id, "never-subscribed"]}
            dropped.release()
            wait_job(client, dropped_id)
            # The kept job runs after the dropped one on the single worker: it is queued, then held.
            ws.send(json.dumps({"type": "subscribe", "job_ids": [kept_id]}))
            wait_step(client, kept_id)
            kept.release()
            frames = until_terminal(ws, kept_id)
    assert frames[0]["status"] in {"queued", "running"}
    assert frames[-1]["job"]["status"] == "completed"


def test_key_is_checked_at_the_handshake(gw: Gateway) -> None:
    for headers, query in [({}, ""), ({"Authorization": "Bearer wrong"}, ""), ({}, "?api_key=wrong")]:
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(gw, query), additional_headers=headers, open_timeout=TIMEOUT_S)
        response = refused.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert json.loads(response.body or b"")["error"]["code"] == "unauthorized"
    # Browsers cannot set headers on a WebSocket: the query parameter works as well as the header.
    with connect(ws_url(gw, f"?api_key={KEY}"), open_timeout=TIMEOUT_S) as ws:
        ws.send(json.dumps({"type": "subscribe", "job_ids": ["no-such-job"]}))
        assert recv(ws)["error"]["code"] == "not_found"


def test_a_key_follows_only_its_own_jobs_unless_admin(gw: Gateway, finished: dict[str, Any]) -> None:
    job = finished
    subscribe = json.dumps({"type": "subscribe", "job_ids": [job["id"]]})
    with open_ws(gw, additional_headers={"Authorization": f"Bearer {OTHER_KEY}"}) as ws:
        ws.send(subscribe)
        error = recv(ws)
    assert error["type"] == "error" and error["job_id"] == job["id"]
    assert error["error"]["code"] == "not_found"
    with open_ws(gw, additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as ws:
        ws.send(subscribe)
        assert until_terminal(ws, job["id"])[-1]["job"] == job


def test_other_origins_are_refused_unless_allowed_by_cors(gw: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(gw, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    for origin in (STUDIO, f"http://127.0.0.1:{gw.port}"):
        with open_ws(gw, origin=origin) as ws:
            ws.send(json.dumps({"type": "subscribe", "job_ids": ["no-such-job"]}))
            assert recv(ws)["type"] == "error"


@pytest.mark.parametrize(
    ("message", "field", "rule"),
    [
        ("{not json", "message", "valid JSON"),
        ("[1, 2]", "message", "JSON object"),
        ('{"job_ids": ["a"]}', "type", "'subscribe' or 'unsubscribe'"),
        ('{"type": "watch", "job_ids": ["a"]}', "type", "'subscribe' or 'unsubscribe'"),
        ('{"type": "subscribe"}', "job_ids", "required"),
        ('{"type": "subscribe", "job_ids": []}', "job_ids", "at least 1"),
        ('{"type": "subscribe", "job_ids": [""]}', "job_ids.0", "at least 1 character"),
        ('{"type": "subscribe", "job_ids": ["a"], "jobs": ["b"]}', "jobs", "unknown field"),
        ('{"type": "subscribe", "job_ids": ["a"], "previews": "sometimes"}', "previews", "boolean"),
        (json.dumps({"type": "subscribe", "job_ids": [f"j{i}" for i in range(65)]}), "job_ids", "at most 64"),
    ],
)
def test_bad_message_is_an_error_frame_and_the_connection_stays(
    gw: Gateway, finished: dict[str, Any], message: str, field: str, rule: str
) -> None:
    job = finished
    with open_ws(gw) as ws:
        ws.send(message)
        error = recv(ws)
        assert error["type"] == "error" and error["job_id"] is None
        assert error["error"]["code"] == "invalid_request"
        assert [d["field"] for d in error["error"]["details"]] == [field]
        assert rule in error["error"]["details"][0]["message"]
        assert error["error"]["message"].startswith(f"{field}: ")
        ws.send(json.dumps({"type": "subscribe", "job_ids": [job["id"]]}))
        assert until_terminal(ws, job["id"])[-1]["job"] == job


def test_binary_frames_and_unknown_jobs_are_refused_per_message(gw: Gateway, finished: dict[str, Any]) -> None:
    job = finished
    with open_ws(gw) as ws:
        ws.send(b'{"type": "subscribe"}')
        error = recv(ws)
        assert error["error"]["details"] == [{"field": "message", "message": "must be a JSON text frame"}]
        ws.send(json.dumps({"type": "subscribe", "job_ids": ["no-such-job", job["id"]]}))
        frames = [recv(ws) for _ in range(3)]
        missing = [f for f in frames if f["type"] == "error"]
        assert missing == [{"type": "error", "job_id": "no-such-job", "error": missing[0]["error"]}]
        assert missing[0]["error"]["code"] == "not_found" and "no-such-job" in missing[0]["error"]["message"]
        assert [f["type"] for f in frames if f["type"] != "error"] == ["image", "status"]
