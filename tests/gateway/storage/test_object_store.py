"""Both storage backends against the same contract: local disk, and S3 on a real SeaweedFS server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage import ObjectStore, make_object_store
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.storage.s3 import S3ObjectStore
from seaweed import Seaweed, seaweed_with_bucket

BUCKET = "ablerefusal-outputs"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with seaweed_with_bucket(tmp_path_factory.mktemp("seaweed"), BUCKET) as server:
        yield server


def s3_store(server: Seaweed, **kw: object) -> S3ObjectStore:
    settings = Settings.model_validate(
        {
            "storage": {
                "backend": "s3",
                "s3": {
                    "endpoint_url": server.endpoint_url,
                    "bucket": BUCKET,
                    "prefix": f"run-{uuid.uuid4().hex[:8]}/",
                    "access_key_id": server.access_key,
                    "secret_access_key": server.secret_key,
                    "region": "us-east-1",
                    **kw,
                },
            }
        }
    )
    store = make_object_store(settings.storage)
    assert isinstance(store, S3ObjectStore)
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return make_object_store(Settings.model_validate({"storage": {"output_dir": str(tmp_path)}}).storage)
    return s3_store(request.getfixturevalue("seaweed"))


def test_put_get_overwrite_and_delete(store: ObjectStore) -> None:
    assert store.get("job-1/0.png") is None and not store.exists("job-1/0.png")
    store.put("job-1/0.png", b"\x89PNG first", "image/png")
    store.put("job-1/0.png", b"\x89PNG retry", "image/png")  # a retried job overwrites its own key
    store.put("job-1/1.png", b"\x89PNG other", "image/png")
    store.put("job-2/0.png", b"\x89PNG else", "image/png")
    got = store.get("job-1/0.png")
    assert got is not None and (got.data, got.content_type) == (b"\x89PNG retry", "image/png")
    assert store.keys() == ["job-1/0.png", "job-1/1.png", "job-2/0.png"]
    assert store.keys("job-1/") == ["job-1/0.png", "job-1/1.png"]
    assert store.delete_prefix("job-1") == 2
    assert store.keys() == ["job-2/0.png"]
    store.delete("job-2/0.png")
    store.delete("job-2/0.png")  # missing: not an error
    assert store.keys() == [] and store.delete_prefix("job-1") == 0


@pytest.mark.parametrize("key", ["../escape.png", "/abs.png", "a//b.png", "a/../b.png", "", "a/.."])
def test_keys_outside_the_store_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        store.put(key, b"x", "image/png")


def test_concurrent_writers_of_one_key_leave_one_whole_object(store: ObjectStore) -> None:
    bodies = [bytes([i]) * 50_000 for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda body: store.put("race/0.png", body, "image/png"), bodies))
    got = store.get("race/0.png")
    assert got is not None and got.data in bodies
    assert store.keys("race/") == ["race/0.png"]  # no temp files left behind


def test_local_symlink_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0.png").write_bytes(b"secret")
    root = tmp_path / "outputs"
    root.mkdir()
    (root / "job").symlink_to(outside, target_is_directory=True)
    store = LocalObjectStore(root)
    assert store.get("job/0.png") is None
    with pytest.raises(ValueError):
        store.put("job/1.png", b"x", "image/png")
    assert not (outside / "1.png").exists()


def test_s3_presigned_urls_fetch_and_credentials_are_checked(seaweed: Seaweed) -> None:
    store = s3_store(seaweed)
    store.put("job/0.png", b"\x89PNG pixels", "image/png")
    url = store.direct_url("job/0.png")
    assert url is not None and "Signature" in url
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG pixels"
    assert fetched.headers["content-type"] == "image/png"
    # Unsigned and wrongly signed requests are refused: the bucket is not public.
    assert httpx.get(url.split("?")[0]).status_code == 403
    wrong = boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint_url,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key="wrong",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError):
        wrong.get_object(Bucket=BUCKET, Key=f"{store.prefix}job/0.png")


def test_s3_public_base_url_and_streaming(seaweed: Seaweed) -> None:
    streamed = s3_store(seaweed, serve="stream")
    assert streamed.direct_url("job/0.png") is None
    settings = Settings.model_validate(
        {
            "storage": {
                "backend": "s3",
                "public_base_url": "https://cdn.example.org/images/",
                "s3": {"bucket": BUCKET, "prefix": "p", "endpoint_url": seaweed.endpoint_url},
            }
        }
    )
    cdn = make_object_store(settings.storage)
    assert cdn.direct_url("job/0.png") == "https://cdn.example.org/images/p/job/0.png"


def test_backend_s3_without_bucket_is_a_clear_settings_error() -> None:
    with pytest.raises(ValueError, match=r"storage\.s3\.bucket is required"):
        Settings.model_validate({"storage": {"backend": "s3"}})
