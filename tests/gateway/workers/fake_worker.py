"""A stand-in worker on a real loopback port, for what a real one cannot be made to say: another protocol
version, fields and events from the future. Everything it answers is set by the test; it records each
request (path and Authorization header)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from ablerefusal.protocol import PROTOCOL_VERSION


def info_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "worker_id": "fake",
        "protocol_version": PROTOCOL_VERSION,
        "device": "cpu",
        "dtype": "float32",
        "samplers": [{"id": "euler_a", "name": "Euler a", "aliases": []}],
    }
    return {**body, **over}


def model_body(model_id: str = "fake-model", **over: Any) -> dict[str, Any]:
    return {"id": model_id, "name": model_id, "family": "sd15", "format": "diffusers", **over}


@dataclass
class FakeWorker:
    info: dict[str, Any] = field(default_factory=info_body)
    models: list[dict[str, Any]] = field(default_factory=lambda: [model_body()])
    # Answers to GET /v1/models?kind=K (adapter listings); a kind not here gets ``models``, as old workers do.
    kind_models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ready_status: int = 200
    stream_lines: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Response:
            self.requests.append((request.url.path, request.headers.get("authorization")))
            response: Response = await call_next(request)
            return response

        @app.get("/v1/ready")
        async def ready() -> Response:
            body = {"ready": self.ready_status == 200, "reason": None if self.ready_status == 200 else "warming up"}
            return Response(json.dumps(body), status_code=self.ready_status, media_type="application/json")

        @app.get("/v1/info")
        async def info() -> dict[str, Any]:
            return self.info

        @app.get("/v1/models")
        async def models(kind: str | None = None) -> dict[str, Any]:
            return {"models": self.kind_models.get(kind, self.models) if kind else self.models}

        @app.post("/v1/generate")
        async def generate() -> Response:
            text = "".join(json.dumps(line) + "\n" for line in self.stream_lines)
            return Response(text, media_type="application/x-ndjson")

        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def __enter__(self) -> FakeWorker:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake worker did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
