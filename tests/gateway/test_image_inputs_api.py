"""Image inputs through POST /api/v1/generate on the real app and a real SQLite store (no workers needed:
everything here is decided at submit). Inline images become uploads before the job is accepted; a refused
request leaves no job row and no upload file."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from ablerefusal.gateway.settings import Settings

SMALL: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2}


def picture(width: int = 64, height: int = 64, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def huge_png_header(width: int, height: int) -> bytes:
    """A few KB that claim width x height pixels (a decompression bomb if decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1_000_000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def job_rows(settings: Settings) -> int:
    engine = sa.create_engine(settings.storage.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM ar_jobs")).scalar_one())
    finally:
        engine.dispose()


def input_files(settings: Settings) -> list[Path]:
    folder = settings.storage.input_dir
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def submit(client: TestClient, **over: Any) -> Any:
    return client.post("/api/v1/generate", json={**SMALL, **over})


def upload(client: TestClient, data: bytes) -> str:
    resp = client.post("/api/v1/uploads", files={"file": ("in.png", data, "image/png")})
    assert resp.status_code == 201, resp.text
    upload_id: str = resp.json()["id"]
    return upload_id


def field_of(resp: Any) -> str:
    details = resp.json()["error"]["details"]
    assert len(details) == 1, details
    field: str = details[0]["field"]
    return field


def test_inline_images_become_uploads_and_the_job_shows_their_urls(client: TestClient, settings: Settings) -> None:
    init, mask = picture(64, 64, 1), Image.new("L", (64, 64), 0)
    resp = submit(
        client,
        init_image=b64(png_bytes(init)),
        mask="data:image/png;base64," + b64(png_bytes(mask)),
        denoising_strength=0.4,
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    init_id, mask_id = job["request"]["init_image"], job["request"]["mask"]
    assert len(init_id) == 64 and len(mask_id) == 64 and init_id != mask_id
    assert job["inputs"] == {"init_image": f"/api/v1/uploads/{init_id}", "mask": f"/api/v1/uploads/{mask_id}"}
    served = client.get(job["inputs"]["init_image"])
    assert served.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(served.content))), np.asarray(init))
    assert [p.name for p in input_files(settings)] == sorted([f"{init_id}.png", f"{mask_id}.png"])
    # The job row holds ids, not pixels.
    engine = sa.create_engine(settings.storage.database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT request, shape FROM ar_jobs")).one()
    engine.dispose()
    assert len(str(stored.request)) < 2000 and init_id in str(stored.request)
    assert len(stored.shape) == 64
    # A read of the job shows the same.
    assert client.get(f"/api/v1/generate/{job['id']}").json()["inputs"] == job["inputs"]


def test_upload_ids_are_accepted_and_unknown_ids_refused(client: TestClient, settings: Settings) -> None:
    init_id = upload(client, png_bytes(picture()))
    ok = submit(client, init_image=init_id)
    assert ok.status_code == 202 and ok.json()["request"]["init_image"] == init_id
    assert ok.json()["inputs"] == {"init_image": f"/api/v1/uploads/{init_id}", "mask": None}
    text_job = submit(client)
    assert text_job.json()["inputs"] is None
    assert text_job.json()["request"]["init_image"] is None
    for field, over in (("init_image", {"init_image": "f" * 64}), ("mask", {"init_image": init_id, "mask": "0" * 64})):
        resp = submit(client, **over)
        assert resp.status_code == 400 and field_of(resp) == field
        assert "unknown upload id" in resp.json()["error"]["details"][0]["message"]
    assert job_rows(settings) == 2


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"mask": "INIT"}, "mask", "needs init_image"),
        ({"outpaint": {"left": 64}}, "outpaint", "needs init_image"),
        ({"init_image": "INIT", "hires": {"scale": 2}}, "hires", "text-to-image"),
        ({"init_image": "INIT", "mask": "INIT", "outpaint": {"left": 64}}, "mask", "not both"),
        ({"init_image": "INIT", "outpaint": {"left": 0}}, "outpaint", "above 0"),
        ({"init_image": "INIT", "outpaint": {"left": 8}, "width": 2048}, "outpaint", "at most 2048"),
        ({"init_image": "INIT", "outpaint": {"left": 12}}, "outpaint.left", "multiple"),
        ({"hires": {"scale": 2, "upscaler": "4x-nothing"}}, "hires.upscaler", "unknown upscaler"),
        ({"hires": {"scale": 2, "denoising_strength": 0.1}}, "hires.denoising_strength", "second-pass step"),
        ({"hires": {"scale": 4}, "width": 1024}, "hires", "at most 2048"),
        ({"init_image": "INIT", "denoising_strength": 1.5}, "denoising_strength", "less than or equal"),
        ({"init_image": "INIT", "mask": "INIT", "inpaint_only_masked": True, "inpainting_fill": "latent_noise"},
         "inpainting_fill", "inpaint_only_masked"),
        # ControlNet units refuse what the worker would (protocol.controlnet_conflict), before any worker call.
        ({"hires": {"scale": 2}, "controlnets": [{"model": "cn", "image": "INIT"}]}, "hires", "controlnets"),
        ({"init_image": "INIT", "mask": "INIT", "inpainting_fill": "latent_nothing",
          "controlnets": [{"model": "cn", "image": "INIT"}]}, "inpainting_fill", "controlnets"),
    ],
)  # fmt: skip
def test_mode_rules_are_400_naming_the_field_and_store_nothing(
    client: TestClient, settings: Settings, over: dict[str, Any], field: str, words: str
) -> None:
    inline = b64(png_bytes(picture()))
    body = {k: (inline if v == "INIT" else v) for k, v in over.items()}
    for unit in body.get("controlnets", []):
        unit["image"] = inline
    resp = submit(client, **body)
    assert resp.status_code == 400, resp.text
    assert field_of(resp) == field
    assert words in resp.json()["error"]["details"][0]["message"]
    if field == "hires.upscaler":
        assert resp.json()["error"]["available"] == ["lanczos", "latent", "nearest"]
    assert job_rows(settings) == 0
    assert input_files(settings) == []


def truncated_jpeg() -> bytes:
    whole = png_bytes(picture(64, 64, 3), "JPEG")
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"this is text, whatever its name says", "not a PNG, JPEG or WebP"),
        (huge_png_header(50_000, 50_000), "limit of 16777216 pixels"),
        (truncated_jpeg(), "truncated"),
    ],
    ids=["text-named-png", "50000x50000-png", "truncated-jpeg"],
)
@pytest.mark.parametrize("field", ["init_image", "mask"])
def test_bad_image_bytes_are_400_and_store_nothing(
    client: TestClient, settings: Settings, data: bytes, words: str, field: str
) -> None:
    good = b64(png_bytes(picture()))
    body = {"init_image": good, "mask": good, field: "data:image/png;base64," + b64(data)}
    resp = submit(client, **body)
    assert resp.status_code == 400, resp.text
    assert field_of(resp) == field
    assert words in resp.json()["error"]["message"]
    # Not even the good image of the same request was stored.
    assert job_rows(settings) == 0
    assert input_files(settings) == []


def test_bad_base64_and_over_the_byte_limit_store_nothing(make_settings: Any) -> None:
    from ablerefusal.gateway.app import create_app

    settings = make_settings(storage={"max_input_bytes": 4096})
    with TestClient(create_app(settings)) as client:
        resp = submit(client, init_image="not base64 at all!")
        assert resp.status_code == 400 and field_of(resp) == "init_image"
        big = png_bytes(picture(128, 128, 5))
        assert len(big) > 4096
        resp = submit(client, init_image=b64(big))
        assert resp.status_code == 400 and field_of(resp) == "init_image"
        assert "the limit is 4096" in resp.json()["error"]["message"]
        assert job_rows(settings) == 0 and input_files(settings) == []


def test_a_mask_of_another_size_is_accepted(client: TestClient) -> None:
    # The API rule (issue 11): the worker resizes the mask to its init image rather than refusing it.
    resp = submit(client, init_image=b64(png_bytes(picture(96, 64))), mask=b64(png_bytes(Image.new("L", (32, 32)))))
    assert resp.status_code == 202, resp.text


def test_a_retried_inline_post_finds_the_same_job(client: TestClient, settings: Settings) -> None:
    body = {**SMALL, "init_image": b64(png_bytes(picture(64, 64, 7))), "denoising_strength": 0.5}
    headers = {"Idempotency-Key": "retry-1"}
    first = client.post("/api/v1/generate", json=body, headers=headers)
    again = client.post("/api/v1/generate", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert job_rows(settings) == 1 and len(input_files(settings)) == 1
    # Another image under the same key is another body.
    other = {**body, "init_image": b64(png_bytes(picture(64, 64, 8)))}
    conflict = client.post("/api/v1/generate", json=other, headers=headers)
    assert conflict.status_code == 422 and conflict.json()["error"]["code"] == "idempotency_conflict"
    assert job_rows(settings) == 1
