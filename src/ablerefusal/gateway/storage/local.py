"""Outputs on the gateway's own disk (the embedded default): ``<root>/<key>``."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ablerefusal.gateway.storage.base import StoredObject
from ablerefusal.gateway.storage.keys import check_key, content_type_of


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # check_key allows plain name segments only; a symlink planted inside the folder must not lead out.
        base = self.root.resolve()
        if not path.resolve().is_relative_to(base):
            raise ValueError(f"key {key!r} leads outside the store")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, final)  # atomic on one filesystem: a reader never sees half a file
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> StoredObject | None:
        try:
            path = self._path(key)
            return StoredObject(path.read_bytes(), content_type_of(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):
            return None

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except ValueError:
            return False

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder = self.root / check_key(prefix.rstrip("/"))
        if not folder.is_dir() or folder.is_symlink():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        return count

    def keys(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not Path(k).name.startswith("."))

    def direct_url(self, key: str) -> str | None:
        return None
