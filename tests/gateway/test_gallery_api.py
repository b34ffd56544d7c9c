"""The gallery and png-info endpoints on a real app, store and output folder (no workers: images are
recorded in the store the way the dispatcher records them, and written as real PNGs)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.schemas import GenerateRequest

A1111_INFOTEXT = (
    "a lighthouse at dusk, (oil painting:1.2)\n"
    "Negative prompt: blurry, lowres\n"
    'Steps: 23, Sampler: Euler a, CFG scale: 6.5, Seed: 1234, Size: 512x768, Model: "tiny, sd"'
)


def png(width: int = 64, height: int = 96, color: tuple[int, int, int] = (200, 30, 30), **text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def store_of(client: TestClient) -> JobStore:
    store: JobStore = client.app.state.service.store  # type: ignore[attr-defined]
    return store


def seed_job(client: TestClient, output_dir: Path, images: int = 1, **request: Any) -> str:
    """A completed job whose PNGs exist under the output folder; its id."""
    store = store_of(client)
    body = {"prompt": "a red cube", "width": 64, "height": 96, "steps": 2, "batch_size": images, **request}
    job_id = store.submit(GenerateRequest(**body)).job.id
    claimed = store.claim("w", max_images=images)[0]
    for index in range(images):
        (output_dir / job_id).mkdir(parents=True, exist_ok=True)
        (output_dir / job_id / f"{index}.png").write_bytes(png(color=(index * 60, 10, 200)))
        store.add_result(job_id, index, f"{job_id}/{index}.png", 7 + index, {}, "info", attempt=claimed.attempt)
    store.complete(job_id, attempt=claimed.attempt)
    return job_id


def output_dir(client: TestClient) -> Path:
    return Path(client.app.state.settings.storage.output_dir)  # type: ignore[attr-defined]


def test_gallery_lists_images_newest_first_with_filters(client: TestClient) -> None:
    out = output_dir(client)
    old = seed_job(client, out, images=2, prompt="an old barn", model="tiny")
    new = seed_job(client, out, prompt="a new Tower", model="other")
    page = client.get("/api/v1/gallery", params={"limit": 2}).json()
    assert page["total"] == 3 and page["models"] == ["other", "tiny"]
    assert [(i["job_id"], i["index"]) for i in page["items"]] == [(new, 0), (old, 0)]
    first = page["items"][0]
    assert first["image_url"] == f"/outputs/{new}/0.png"
    assert first["thumb_url"] == f"/api/v1/gallery/{new}/0/thumb.webp"
    assert (first["prompt"], first["model"], first["width"], first["height"], first["seed"]) == (
        "a new Tower",
        "other",
        64,
        96,
        7,
    )
    searched = client.get("/api/v1/gallery", params={"q": "tower"}).json()
    assert [i["job_id"] for i in searched["items"]] == [new]
    by_model = client.get("/api/v1/gallery", params={"model": "tiny", "offset": 1}).json()
    assert [(i["job_id"], i["index"]) for i in by_model["items"]] == [(old, 1)] and by_model["total"] == 2


def test_gallery_refuses_bad_paging(client: TestClient) -> None:
    answer = client.get("/api/v1/gallery", params={"limit": 0})
    assert answer.status_code == 400 and "limit" in answer.text


def test_thumbnail_is_a_small_webp_made_once_and_kept_beside_the_image(client: TestClient) -> None:
    out = output_dir(client)
    job_id = seed_job(client, out)
    (out / job_id / "0.png").write_bytes(png(width=1024, height=768))
    answer = client.get(f"/api/v1/gallery/{job_id}/0/thumb.webp")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(answer.content)) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (256, 192)
    assert len(answer.content) < 8_000
    # A thumbnail never changes (its image never does): browsers keep it, per user (job images are private).
    assert answer.headers["cache-control"] == "private, max-age=31536000, immutable"
    cached = out / job_id / "thumbs" / "0.webp"
    assert cached.read_bytes() == answer.content
    # Served from the cache from now on: the PNG is not read again.
    (out / job_id / "0.png").write_bytes(b"not a png any more")
    assert client.get(f"/api/v1/gallery/{job_id}/0/thumb.webp").content == answer.content


def test_thumbnail_of_a_missing_image_is_404(client: TestClient) -> None:
    job_id = seed_job(client, output_dir(client))
    assert client.get(f"/api/v1/gallery/{job_id}/5/thumb.webp").status_code == 404
    assert client.get("/api/v1/gallery/no-such-job/0/thumb.webp").status_code == 404


def test_delete_several_removes_jobs_images_and_thumbnails(client: TestClient) -> None:
    out = output_dir(client)
    first, second, kept = (seed_job(client, out) for _ in range(3))
    assert client.get(f"/api/v1/gallery/{first}/0/thumb.webp").status_code == 200
    answer = client.post("/api/v1/gallery/delete", json={"job_ids": [first, second, first]})
    assert answer.status_code == 200 and answer.json() == {"deleted": [first, second]}
    assert not (out / first).exists() and not (out / second).exists() and (out / kept / "0.png").is_file()
    assert [i["job_id"] for i in client.get("/api/v1/gallery").json()["items"]] == [kept]


def test_delete_is_all_or_nothing(client: TestClient) -> None:
    out = output_dir(client)
    done = seed_job(client, out)
    queued = store_of(client).submit(GenerateRequest(prompt="waiting", width=64, height=64)).job.id
    answer = client.post("/api/v1/gallery/delete", json={"job_ids": [done, queued]})
    assert answer.status_code == 409 and queued in answer.json()["error"]["message"]
    missing = client.post("/api/v1/gallery/delete", json={"job_ids": [done, "no-such-job"]})
    assert missing.status_code == 404
    assert (out / done / "0.png").is_file() and client.get("/api/v1/gallery").json()["total"] == 1
    empty = client.post("/api/v1/gallery/delete", json={"job_ids": []})
    assert empty.status_code == 400 and "job_ids" in empty.text


def test_zip_holds_the_exact_files(client: TestClient) -> None:
    out = output_dir(client)
    first = seed_job(client, out, images=2)
    second = seed_job(client, out)
    refs = [{"job_id": second, "index": 0}, {"job_id": first, "index": 1}, {"job_id": second, "index": 0}]
    with client.stream("POST", "/api/v1/gallery/zip", json={"images": refs}) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
        assert "attachment" in answer.headers["content-disposition"]
        data = b"".join(answer.iter_bytes())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [f"{second}-0.png", f"{first}-1.png"]
        assert archive.read(f"{first}-1.png") == (out / first / "1.png").read_bytes()


def test_zip_of_an_unknown_image_is_404_before_any_byte(client: TestClient) -> None:
    job_id = seed_job(client, output_dir(client))
    answer = client.post("/api/v1/gallery/zip", json={"images": [{"job_id": job_id, "index": 3}]})
    assert answer.status_code == 404 and "image 3" in answer.json()["error"]["message"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_png_info_reads_a1111_infotext_with_the_compat_parser(client: TestClient) -> None:
    image = b64(png(parameters=A1111_INFOTEXT, Software="tests"))
    ours = client.post("/api/v1/png-info", json={"image": "data:image/png;base64," + image}).json()
    theirs = client.post("/sdapi/v1/png-info", json={"image": image}).json()
    assert ours["source"] == "a1111" and ours["info"] == A1111_INFOTEXT
    assert ours["parameters"] == theirs["parameters"] and ours["items"] == {"Software": "tests"}
    params = ours["parameters"]
    assert params["Prompt"] == "a lighthouse at dusk, (oil painting:1.2)"
    assert params["Negative prompt"] == "blurry, lowres"
    assert (params["Steps"], params["Sampler"], params["CFG scale"], params["Seed"]) == ("23", "Euler a", "6.5", "1234")
    assert (params["Size-1"], params["Size-2"], params["Model"]) == ("512", "768", "tiny, sd")


COMFY_GRAPH = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 42,
            "steps": 30,
            "cfg": 7.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 640, "height": 384, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle in the clouds", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
}


def test_png_info_reads_a_comfyui_prompt_graph(client: TestClient) -> None:
    image = b64(png(prompt=json.dumps(COMFY_GRAPH), workflow="{}"))
    answer = client.post("/api/v1/png-info", json={"image": image}).json()
    assert answer["source"] == "comfyui" and answer["info"] == ""
    assert answer["parameters"] == {
        "Prompt": "a castle in the clouds",
        "Negative prompt": "ugly",
        "Seed": "42",
        "Steps": "30",
        "CFG scale": "7.5",
        "Sampler": "dpmpp_2m",
        "Schedule type": "karras",
        "Size-1": "640",
        "Size-2": "384",
        "Model": "dreamshaper_8",
    }


def test_png_info_without_parameters(client: TestClient) -> None:
    answer = client.post("/api/v1/png-info", json={"image": b64(png(prompt="not json {"))}).json()
    assert answer == {"source": "none", "info": "", "items": {"prompt": "not json {"}, "parameters": {}}


def test_png_info_refuses_what_is_not_an_image(client: TestClient) -> None:
    for value, rule in (("%%%", "base64"), (b64(b"plain text"), "not an image"), ("", "at least 1")):
        answer = client.post("/api/v1/png-info", json={"image": value})
        assert answer.status_code == 400, value
        assert "image" in answer.text and rule in answer.text, answer.text


def test_an_over_long_job_id_in_a_thumbnail_url_is_refused_not_a_server_error(client: TestClient) -> None:
    answer = client.get(f"/api/v1/gallery/{'Ω' * 150}/151/thumb.webp")
    assert answer.status_code in (400, 422), answer.text
