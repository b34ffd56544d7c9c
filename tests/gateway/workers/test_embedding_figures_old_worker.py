"""A1111's ``/sdapi/v1/embeddings`` with a worker from before the embedding figures: its listing has no
``embedding`` object, and A1111's schema requires ``shape`` and ``vectors`` as ints, so that entry is left
out rather than answered with invented numbers; a newer worker's entry is answered as it was listed. (A stand-in
worker: a real one of this version always lists the figures, tests/compat/test_compat_a1111_embeddings.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable

from fake_worker import FakeWorker, model_body
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings

FIGURES = {"vectors": 3, "shape": 768, "step": 1500, "sd_checkpoint": "a9263745", "sd_checkpoint_name": "v1-5"}


def test_embedding_without_figures_is_left_out_of_a1111(make_settings: Callable[..., Settings]) -> None:
    embeddings = [
        model_body("old-emb", kind="embedding", format="single-file"),
        model_body("new-emb", kind="embedding", format="single-file", embedding=FIGURES),
        model_body("xl-emb", kind="embedding", family="sdxl", format="single-file", embedding=FIGURES),
    ]
    with FakeWorker(kind_models={"embedding": embeddings}) as worker:
        settings = make_settings(workers={"local": 0, "urls": [worker.url], "probe_interval_s": 0.05})
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 30
            while client.get("/api/v1/ready").status_code != 200:
                assert time.monotonic() < deadline, client.get("/api/v1/ready").json()
                time.sleep(0.02)
            a1111 = client.get("/sdapi/v1/embeddings")
            listed = client.get("/api/v1/models", params={"kind": "embedding"}).json()["models"]
    assert a1111.status_code == 200, a1111.text
    assert a1111.json() == {"loaded": {"new-emb": FIGURES}, "skipped": {"xl-emb": FIGURES}}
    # The gateway's own listing still shows it, without figures.
    assert {m["id"]: m["embedding"] for m in listed} == {"old-emb": None, "new-emb": FIGURES, "xl-emb": FIGURES}
