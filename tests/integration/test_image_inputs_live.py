"""Image inputs end to end: a real gateway process with its supervised local worker (tiny SD 1.5, CPU),
over real HTTP. Uploads and inline images go in, the worker's images come out; the CLI's image flags too."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from gateway_procs import Gateway, make_gateway, wait_job, wait_until
from PIL import Image

from holds import Hold

pytestmark = pytest.mark.integration

SMALL: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def hold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("holds")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path, hold_dir: Path) -> Iterator[Gateway]:
    gateway = make_gateway(tmp_path_factory.mktemp("images"), tiny_models, "--device", "cpu", env=Hold(hold_dir).env)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with gw.client() as c:
        yield c


def picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def upload(client: httpx.Client, image: Image.Image) -> str:
    resp = client.post("/api/v1/uploads", files={"file": ("in.png", png(image), "image/png")})
    assert resp.status_code == 201, resp.text
    upload_id: str = resp.json()["id"]
    return upload_id


def run(client: httpx.Client, **over: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/generate", json={**SMALL, **over})
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "completed", job["error"]
    return job


def image_of(client: httpx.Client, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(client.get(url).raise_for_status().content)).convert("RGB"))


def results(client: httpx.Client, job: dict[str, Any]) -> list[np.ndarray]:
    return [image_of(client, r["image_url"]) for r in job["results"]]


def test_strength_zero_returns_the_input_resized(client: httpx.Client) -> None:
    source = picture(96, 80, 1)
    job = run(client, init_image=upload(client, source), denoising_strength=0.0, seed=3)
    (out,) = results(client, job)
    assert np.array_equal(out, np.asarray(source.resize((64, 64), Image.Resampling.LANCZOS)))
    assert job["inputs"]["init_image"] == f"/api/v1/uploads/{job['request']['init_image']}"
    assert np.array_equal(image_of(client, job["inputs"]["init_image"]), np.asarray(source))
    assert "Denoising strength: 0," in job["results"][0]["infotext"]
    assert job["results"][0]["metadata"]["mode"] == "img2img"


def test_a_mask_leaves_every_pixel_outside_it_identical(client: httpx.Client) -> None:
    source = picture(64, 64, 2)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    inline_mask = "data:image/png;base64," + base64.b64encode(png(mask)).decode()
    job = run(client, init_image=upload(client, source), mask=inline_mask, mask_blur=0, denoising_strength=0.9, seed=4)
    (out,) = results(client, job)
    outside = np.asarray(mask) == 0
    assert np.array_equal(out[outside], np.asarray(source)[outside])
    assert not np.array_equal(out[~outside], np.asarray(source)[~outside])  # the masked square was redrawn
    info = job["results"][0]["infotext"]
    assert "Mask blur: 0" in info and "Denoising strength: 0.9" in info
    assert job["inputs"]["mask"] == f"/api/v1/uploads/{job['request']['mask']}"


def test_outpaint_returns_the_grown_size_with_the_original_in_place(client: httpx.Client) -> None:
    source = picture(64, 64, 3)
    inline = base64.b64encode(png(source)).decode()
    job = run(client, init_image=inline, outpaint={"right": 32, "top": 16}, denoising_strength=1.0, seed=5)
    (out,) = results(client, job)
    assert out.shape == (80, 96, 3)
    assert np.array_equal(out[16:80, 0:64], np.asarray(source))
    assert job["results"][0]["metadata"]["outpaint"] == {"left": 0, "right": 32, "top": 16, "bottom": 0}


def test_hires_returns_the_scaled_size_and_says_so(client: httpx.Client) -> None:
    job = run(client, seed=6, hires={"scale": 2, "upscaler": "lanczos", "steps": 2, "denoising_strength": 0.5})
    (out,) = results(client, job)
    assert out.shape == (128, 128, 3)
    info = job["results"][0]["infotext"]
    for words in ("Hires upscale: 2", "Hires steps: 2", "Hires upscaler: Lanczos", "Denoising strength: 0.5"):
        assert words in info
    assert job["results"][0]["metadata"]["hires"]["scale"] == 2


def test_unknown_upscaler_lists_the_workers_ones(client: httpx.Client) -> None:
    resp = client.post("/api/v1/generate", json={**SMALL, "hires": {"scale": 2, "upscaler": "nope"}})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["details"][0]["field"] == "hires.upscaler"
    assert {"latent", "lanczos", "nearest"} <= set(error["available"])


def test_the_same_seed_gives_the_same_pixels_alone_and_coalesced(client: httpx.Client, hold_dir: Path) -> None:
    inits = [upload(client, picture(64, 64, 10 + n)) for n in range(2)]
    bodies = [
        {**SMALL, "steps": 3, "prompt": p, "seed": s, "init_image": i, "denoising_strength": 0.6}
        for p, s, i in zip(("a dog", "a fox"), (21, 22), inits, strict=True)
    ]
    alone = [run(client, **b) for b in bodies]
    assert alone[0]["started_at"] != alone[1]["started_at"]
    with Hold(hold_dir) as hold:
        # A held job keeps the worker busy while both image jobs are queued, so one claim takes both.
        blocker = client.post("/api/v1/generate", json={**SMALL, "steps": 5, "prompt": hold.prompt()}).json()["id"]
        wait_until(lambda: client.get(f"/api/v1/generate/{blocker}").json()["step"] >= 1, None, "the blocker")
        ids = [client.post("/api/v1/generate", json=b).json()["id"] for b in bodies]
    together = [wait_job(client, i) for i in ids]
    assert [j["status"] for j in together] == ["completed", "completed"]
    assert together[0]["started_at"] == together[1]["started_at"]  # one call
    for one, many in zip(alone, together, strict=True):
        assert np.array_equal(results(client, one)[0], results(client, many)[0])


def _counts(gw: Gateway) -> tuple[int, int]:
    engine = sa.create_engine(f"sqlite:///{gw.root / 'jobs.db'}")
    with engine.connect() as conn:
        rows = int(conn.execute(sa.text("SELECT count(*) FROM ar_jobs")).scalar_one())
    engine.dispose()
    inputs = gw.root / "inputs"
    return rows, len([p for p in inputs.rglob("*") if p.is_file()]) if inputs.exists() else 0


def test_bad_inputs_are_400_and_store_nothing(client: httpx.Client, gw: Gateway) -> None:
    before = _counts(gw)
    good = base64.b64encode(png(picture(64, 64, 30))).decode()
    truncated = png(picture(64, 64, 31), "JPEG")[:300]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"init_image": base64.b64encode(b"plain text named in.png").decode()}, "init_image"),
        ({"init_image": good, "mask": base64.b64encode(truncated).decode()}, "mask"),
        ({"init_image": good, "denoising_strength": 1.5}, "denoising_strength"),
        ({"mask": good}, "mask"),
        ({"init_image": "e" * 64}, "init_image"),
    ]
    for over, field in cases:
        resp = client.post("/api/v1/generate", json={**SMALL, **over})
        assert resp.status_code == 400, resp.text
        assert [d["field"] for d in resp.json()["error"]["details"]] == [field]
    bad_upload = client.post("/api/v1/uploads", files={"file": ("in.png", b"not an image", "image/png")})
    assert bad_upload.status_code == 400
    assert _counts(gw) == before


def _cli(gw: Gateway, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ablerefusal", "generate", "a cli cube", "--steps", "2", "--width", "64",
           "--height", "64", "--seed", "7", "--out", str(out), "--url", gw.url, *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _saved(out: Path) -> np.ndarray:
    (only,) = sorted(out.iterdir())
    return np.asarray(Image.open(only).convert("RGB"))


def test_cli_image_flags_end_to_end(gw: Gateway, tmp_path: Path) -> None:
    source = picture(96, 80, 40)
    init = tmp_path / "in.png"
    init.write_bytes(png(source))
    done = _cli(gw, tmp_path / "img2img", "--init-image", str(init), "--strength", "0")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(_saved(tmp_path / "img2img"), np.asarray(source.resize((64, 64), Image.Resampling.LANCZOS)))

    square = tmp_path / "square.png"
    square.write_bytes(png(picture(64, 64, 41)))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    (tmp_path / "mask.png").write_bytes(png(mask))
    args = ("--init-image", str(square), "--mask", str(tmp_path / "mask.png"), "--strength", "0.8")
    done = _cli(gw, tmp_path / "inpaint", *args)
    assert done.returncode == 0, done.stderr
    # mask blur 4 by default: columns from 32 + 3*4 on are out of its reach.
    assert np.array_equal(_saved(tmp_path / "inpaint")[:, 44:], np.asarray(Image.open(square).convert("RGB"))[:, 44:])

    done = _cli(gw, tmp_path / "outpaint", "--init-image", str(square), "--outpaint", "0,32,0,0", "--strength", "1")
    assert done.returncode == 0, done.stderr
    grown = _saved(tmp_path / "outpaint")
    assert grown.shape == (64, 96, 3) and np.array_equal(grown[:, :64], np.asarray(Image.open(square).convert("RGB")))

    done = _cli(gw, tmp_path / "hires", "--hires", "2", "--hires-upscaler", "nearest", "--hires-strength", "0.5")
    assert done.returncode == 0, done.stderr
    assert _saved(tmp_path / "hires").shape == (128, 128, 3)

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    bad = _cli(gw, tmp_path / "bad", "--init-image", str(text))
    assert bad.returncode == 1 and "--init-image" in bad.stderr and "not a PNG, JPEG or WebP" in bad.stderr
    bad = _cli(gw, tmp_path / "bad", "--init-image", str(square), "--outpaint", "1,2")
    assert bad.returncode != 0 and "--outpaint" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_an_inpainting_model_takes_only_masked_jobs_at_submit(gateway_factory: Any, tmp_path: Path) -> None:
    # A dedicated inpainting model (9-channel UNet) can only inpaint or outpaint: other jobs naming it are a 400
    # on `model` at submit, instead of jobs accepted and then failed by the worker.
    models = tmp_path / "inpainting-models"
    make = [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(models), "--inpainting"]
    subprocess.run(make, check=True, timeout=600, capture_output=True)
    gw = gateway_factory("--device", "cpu", models=models)
    model = "tiny-sd15-inpainting"
    source = base64.b64encode(png(picture(64, 64, 3))).decode()
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    with gw.client() as client:
        assert {m["id"]: m["inpainting"] for m in client.get("/api/v1/models").json()["models"]} == {model: True}
        for extra in ({}, {"init_image": source}):
            refused = client.post("/api/v1/generate", json={**SMALL, "model": model, **extra})
            assert refused.status_code == 400, refused.text
            [detail] = refused.json()["error"]["details"]
            assert detail["field"] == "model" and "inpainting model" in detail["message"]
        inpaint = {**SMALL, "model": model, "init_image": source, "mask": base64.b64encode(png(mask)).decode()}
        accepted = client.post("/api/v1/generate", json=inpaint)
        assert accepted.status_code == 202, accepted.text
        assert wait_job(client, accepted.json()["id"])["status"] == "completed"
