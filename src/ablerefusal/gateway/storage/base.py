"""The interface both backends implement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str


class ObjectStore(Protocol):
    """Blocking calls; see the package docstring."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write ``data`` at ``key`` in one step: a reader sees the old object or the new one, never a part."""
        ...

    def get(self, key: str) -> StoredObject | None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix`` (a job's folder); returns how many went."""
        ...

    def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted (for housekeeping and tests)."""
        ...

    def direct_url(self, key: str) -> str | None:
        """A URL a client can fetch ``key`` from without the gateway (a CDN, or a presigned S3 URL), or
        ``None`` when the gateway must stream the bytes itself."""
        ...
