"""The configured backend (``storage.backend``)."""

from __future__ import annotations

from ablerefusal.gateway.settings import StorageSettings
from ablerefusal.gateway.storage.base import ObjectStore
from ablerefusal.gateway.storage.local import LocalObjectStore


def make_object_store(storage: StorageSettings) -> ObjectStore:
    if storage.backend == "local":
        return LocalObjectStore(storage.output_dir)
    from ablerefusal.gateway.storage.s3 import S3ObjectStore

    s3 = storage.s3
    assert s3.bucket is not None  # StorageSettings refuses backend s3 without a bucket
    return S3ObjectStore(
        bucket=s3.bucket,
        prefix=s3.prefix,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key.get_secret_value() if s3.secret_access_key else None,
        public_base_url=storage.public_base_url,
        presign=s3.serve == "redirect",
        presign_expires_s=s3.presign_expires_s,
    )
