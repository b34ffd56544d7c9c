"""POST/GET /api/v1/uploads on the real app and a real input folder; inline images through the same service."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.uploads import UploadError, UploadService


def picture(width: int = 40, height: int = 24) -> Image.Image:
    rng = np.random.default_rng(width * 1000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header for a huge image with a few KB of data: decoding it would need width x height bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1_000_000, 9))
        + chunk(b"IEND", b"")
    )


def post(client: TestClient, data: bytes, name: str = "in.png", ctype: str = "image/png") -> object:
    return client.post("/api/v1/uploads", files={"file": (name, data, ctype)})


def stored_files(settings: Settings) -> list[Path]:
    folder = settings.storage.input_dir
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_png_upload_is_stored_content_addressed_and_served(client: TestClient, settings: Settings) -> None:
    image = picture()
    resp = post(client, encoded(image, "PNG"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["width"], body["height"]) == (40, 24)
    assert body["url"] == f"/api/v1/uploads/{body['id']}"
    served = client.get(body["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert hashlib.sha256(served.content).hexdigest() == body["id"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(served.content))), np.asarray(image))
    assert stored_files(settings) == [settings.storage.input_dir / f"{body['id']}.png"]


def test_metadata_is_dropped_so_the_same_pixels_are_one_upload(client: TestClient, settings: Settings) -> None:
    image = picture()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "secret prompt")
    plain = post(client, encoded(image, "PNG")).json()
    tagged = post(client, encoded(image, "PNG", pnginfo=info)).json()
    assert tagged["id"] == plain["id"]
    served = Image.open(io.BytesIO(client.get(tagged["url"]).content))
    assert "parameters" not in served.info
    assert len(stored_files(settings)) == 1


def test_jpeg_exif_orientation_is_applied_and_exif_dropped(client: TestClient) -> None:
    image = picture(40, 24)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "SomeCamera"
    resp = post(client, encoded(image, "JPEG", exif=exif, quality=95), name="photo.jpg", ctype="image/jpeg")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["width"], body["height"]) == (24, 40)
    served = Image.open(io.BytesIO(client.get(body["url"]).content))
    assert served.size == (24, 40) and not served.getexif()
    # The stored pixels are the decoded JPEG turned upright.
    upright = Image.open(io.BytesIO(encoded(image, "JPEG", quality=95))).transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(served), np.asarray(upright))


def test_webp_is_accepted_whatever_the_name(client: TestClient) -> None:
    resp = post(client, encoded(picture(), "WEBP", lossless=True), name="x.gif", ctype="image/gif")
    assert resp.status_code == 201, resp.text
    assert resp.json()["width"] == 40


def _truncated_jpeg() -> bytes:
    data = encoded(picture(), "JPEG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("case", "data", "words"),
    [
        ("text named png", b"this is not an image, just text", "not a PNG, JPEG or WebP"),
        ("gif", encoded(picture(), "GIF"), "not a PNG, JPEG or WebP"),
        ("bomb 50000x50000", png_claiming(50000, 50000), "over the limit of 16777216 pixels"),
        ("over the pixel limit", png_claiming(5000, 5000), "5000x5000 pixels; the limit is 16777216"),
        ("truncated jpeg", _truncated_jpeg(), "truncated"),
        ("empty", b"", "not a PNG, JPEG or WebP"),
    ],
)
def test_bad_images_are_400_and_store_nothing(
    client: TestClient, settings: Settings, case: str, data: bytes, words: str
) -> None:
    resp = post(client, data)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request" and words in error["message"], error
    assert [d["field"] for d in error["details"]] == ["file"]
    assert stored_files(settings) == []


def test_limits_are_configurable_and_bytes_over_the_limit_are_413(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(storage={"max_input_bytes": 4096, "max_input_pixels": 64 * 64})
    with TestClient(create_app(settings)) as client:
        big = post(client, encoded(picture(64, 64), "PNG"))  # random pixels: ~12 KB
        assert big.status_code == 413, big.text
        assert big.json()["error"]["details"][0]["field"] == "file"
        wide = post(client, encoded(Image.new("RGB", (65, 64)), "PNG"))
        assert wide.status_code == 400 and "65x64 pixels; the limit is 4096" in wide.json()["error"]["message"]
        assert post(client, encoded(Image.new("RGB", (64, 64)), "PNG")).status_code == 201
    assert len(stored_files(settings)) == 1


@pytest.mark.parametrize("upload_id", ["0" * 64, "not-an-id", "A" * 64, "..passwd"])
def test_unknown_upload_is_404(client: TestClient, upload_id: str) -> None:
    resp = client.get(f"/api/v1/uploads/{upload_id}")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_inline_base64_and_data_urls_become_the_same_upload(tmp_path: Path) -> None:
    service = UploadService(LocalObjectStore(tmp_path), max_bytes=1 << 20, max_pixels=4096 * 4096)
    raw = encoded(picture(), "PNG")
    text = base64.b64encode(raw).decode()
    plain = service.store_inline(text)
    url = service.store_inline(f"data:image/png;base64,{text}")
    assert plain == url == service.store(raw)
    assert service.read(plain.id) is not None
    with pytest.raises(UploadError, match="base64"):
        service.store_inline("data:image/png;base64,@@@")
    with pytest.raises(UploadError, match="must be base64"):
        service.store_inline("data:image/png,rawbytes")
    with pytest.raises(UploadError, match="not a PNG, JPEG or WebP"):
        service.store_inline(base64.b64encode(b"plain text").decode())
