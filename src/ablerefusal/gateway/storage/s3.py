"""Outputs in S3-compatible object storage (AWS S3, MinIO, SeaweedFS, R2 …), for a fleet of gateways.

Every gateway of a fleet reads and writes the same bucket, so an image written by the gateway that ran the
job is served by any other. ``PutObject`` is atomic per key, which gives the same guarantee as the local
backend's rename: a retry overwrites, a reader never sees a partial object.
"""

from __future__ import annotations

from typing import Any

from ablerefusal.gateway.storage.base import StoredObject
from ablerefusal.gateway.storage.keys import check_key, content_type_of


class S3ObjectStore:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        public_base_url: str | None = None,
        presign: bool = True,
        presign_expires_s: int = 3600,
        client: Any | None = None,
    ) -> None:
        import boto3  # only a gateway configured for S3 needs it loaded
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.presign = presign
        self.presign_expires_s = presign_expires_s
        # boto3 clients are thread-safe; one serves every thread the gateway runs storage calls in.
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        body = answer["Body"]
        try:
            return StoredObject(body.read(), answer.get("ContentType") or content_type_of(key))
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = self._list(self._key(prefix.rstrip("/")) + "/")
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k.removeprefix(self.prefix) for k in self._list(self.prefix + prefix))

    def _list(self, full_prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        return [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix)
            for obj in page.get("Contents", [])
        ]

    def direct_url(self, key: str) -> str | None:
        if self.public_base_url:
            return f"{self.public_base_url}/{self._key(key)}"
        if not self.presign:
            return None
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=self.presign_expires_s
        )
        return url


def _missing(exc: Any) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}
