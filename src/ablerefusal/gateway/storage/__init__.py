"""Where images live: the gateway's one interface to output (and input) files, local disk or S3.

Keys are ``<job-id>/<index>.png`` for outputs; they never name a path outside the store. Writes are atomic
and idempotent (a retried job overwrites the same key); reads of a missing key return ``None``. Every call
blocks (disk or network): async callers run them in a thread.
"""

from __future__ import annotations

from ablerefusal.gateway.storage.base import ObjectStore, StoredObject
from ablerefusal.gateway.storage.factory import make_object_store

__all__ = ["ObjectStore", "StoredObject", "make_object_store"]
