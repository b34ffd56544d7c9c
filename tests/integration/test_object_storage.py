"""Two gateways on one PostgreSQL store and one S3 bucket (real SeaweedFS): images live in the bucket, so any
gateway serves any job's images, whichever gateway's dispatcher ran it.

Gateway A supervises the only worker and redirects /outputs to presigned URLs; gateway B has no worker and
streams images through itself. Jobs submitted to B run on A's worker.
"""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from gateway_procs import Gateway, make_gateway, wait_job
from PIL import Image

from seaweed import Seaweed, s3_env, seaweed_with_bucket

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PG_URL = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BUCKET = "ablerefusal-fleet"
JOB = {"prompt": "a lighthouse in the bucket", "width": 64, "height": 64, "steps": 2, "seed": 11, "batch_size": 2}


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with seaweed_with_bucket(tmp_path_factory.mktemp("seaweed"), BUCKET) as server:
        yield server


def gateway_s3_env(server: Seaweed, prefix: str, serve: str) -> dict[str, str]:
    return s3_env(server, BUCKET, prefix, serve)


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: Path, seaweed: Seaweed, pg_schema: str
) -> Iterator[tuple[Gateway, Gateway, str]]:
    prefix = f"run-{uuid.uuid4().hex[:8]}"
    database = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    root = tmp_path_factory.mktemp("s3-fleet")
    a = make_gateway(root / "a", tiny_models, "--device", "cpu", "--database-url", database,
                     env=gateway_s3_env(seaweed, prefix, "redirect"))  # fmt: skip
    b = make_gateway(root / "b", None, "--no-local-worker", "--database-url", database,
                     env=gateway_s3_env(seaweed, prefix, "stream"))  # fmt: skip
    a.start()
    b.start(wait_ready=False)  # no worker of its own: B only accepts and serves
    try:
        yield a, b, prefix
    finally:
        b.stop()
        a.stop()


def bucket(server: Seaweed) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )


def objects(server: Seaweed, prefix: str) -> dict[str, bytes]:
    client = bucket(server)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/").get("Contents", [])
    return {
        o["Key"].removeprefix(f"{prefix}/"): client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


def local_files(gw: Gateway) -> list[Path]:
    return [p for p in gw.output_dir.rglob("*") if p.is_file()] if gw.output_dir.exists() else []


def test_images_go_to_the_bucket_and_every_gateway_serves_them(
    fleet: tuple[Gateway, Gateway, str], seaweed: Seaweed
) -> None:
    a, b, prefix = fleet
    with b.client() as on_b, a.client() as on_a:
        job = wait_job(on_b, on_b.post("/api/v1/generate", json=JOB).json()["id"])
        assert job["status"] == "completed", job
        assert job["worker_id"] == "local-0"  # run by A's dispatcher on A's worker
        stored = objects(seaweed, prefix)
        keys = [r["image_url"].removeprefix("/outputs/") for r in job["results"]]
        assert sorted(stored) == sorted(keys) == [f"{job['id']}/0.png", f"{job['id']}/1.png"]
        assert all(data.startswith(b"\x89PNG") for data in stored.values())
        assert local_files(a) == [] and local_files(b) == []  # nothing on either gateway's disk

        for result, key in zip(job["results"], keys, strict=True):
            # A redirects to a presigned URL on the bucket, which serves the very object.
            redirect = on_a.get(result["image_url"], follow_redirects=False)
            assert redirect.status_code == 307, redirect.text
            location = redirect.headers["location"]
            assert location.startswith(seaweed.endpoint_url) and "Signature" in location
            assert httpx.get(location).content == stored[key]
            # B streams the same bytes itself, as an inert image.
            streamed = on_b.get(result["image_url"])
            assert streamed.status_code == 200 and streamed.content == stored[key]
            assert streamed.headers["content-type"] == "image/png"
            assert streamed.headers["content-security-policy"].startswith("default-src 'none'")
        assert on_b.get(f"/outputs/{job['id']}/7.png").status_code == 404
        assert on_b.get("/outputs/..%2Fescape.png").status_code in (400, 404)

        # A1111 clients get the images inline, read back from the bucket (B, with no worker, lists no model
        # for A1111's checkpoint choice, so this asks A).
        answer = on_a.post("/sdapi/v1/txt2img", json={**JOB, "batch_size": 1, "seed": 12})
        assert answer.status_code == 200, answer.text
        [image_b64] = answer.json()["images"]
        seed_12 = [k for k, v in objects(seaweed, prefix).items() if v == base64.b64decode(image_b64)]
        assert len(seed_12) == 1 and json.loads(answer.json()["info"])["seed"] == 12

        # Deleting on A removes the job's objects from the bucket (B's view agrees).
        assert on_a.delete(f"/api/v1/generate/{job['id']}").status_code == 204
        assert not any(k.startswith(job["id"]) for k in objects(seaweed, prefix))
        assert on_b.get(job["results"][0]["image_url"]).status_code == 404


def test_uploads_go_to_the_bucket_and_the_other_gateways_worker_reads_them(
    fleet: tuple[Gateway, Gateway, str], seaweed: Seaweed
) -> None:
    # An input image uploaded to B (no worker) lands in the bucket under inputs/; an img2img job submitted to B
    # runs on A's worker, whose gateway reads the image from the bucket; both gateways serve the upload.
    a, b, prefix = fleet
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 90)).save(picture, "PNG")
    with b.client() as on_b, a.client() as on_a:
        answer = on_b.post("/api/v1/uploads", files={"file": ("in.png", picture.getvalue(), "image/png")})
        assert answer.status_code == 201, answer.text
        upload = answer.json()
        stored = objects(seaweed, prefix)
        assert stored[f"inputs/{upload['id']}.png"].startswith(b"\x89PNG")
        assert not (b.root / "inputs").exists() or not any((b.root / "inputs").iterdir())
        assert (
            on_a.get(upload["url"]).content == on_b.get(upload["url"]).content == stored[f"inputs/{upload['id']}.png"]
        )
        # The bucket's inputs/ are not outputs: /outputs does not serve them, on either gateway.
        assert on_a.get(f"/outputs/inputs/{upload['id']}.png").status_code == 404
        assert on_b.get(f"/outputs/inputs/{upload['id']}.png").status_code == 404

        body = {**JOB, "batch_size": 1, "init_image": upload["id"], "denoising_strength": 0.0}
        job = wait_job(on_b, on_b.post("/api/v1/generate", json=body).json()["id"])
        assert job["status"] == "completed" and job["worker_id"] == "local-0", job
        # Strength 0 returns the input: the worker got the very pixels uploaded to the other gateway.
        [result] = job["results"]
        with Image.open(io.BytesIO(on_b.get(result["image_url"]).content)) as out:
            assert out.convert("RGB").getpixel((5, 5)) == (200, 40, 90)
