"""Shared pieces of the security tests: a real in-process gateway app, a real gateway process, and the
hand-built PNGs the attacks send (a module with a unique name so test modules can import it)."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings, load_settings
from procs import Proc, free_port


def settings_in(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """Gateway settings on a real SQLite store in ``tmp``, no workers; keyword arguments are sections."""
    base: dict[str, Any] = {
        "storage": {
            "database_url": f"sqlite:///{tmp / 'jobs.db'}",
            "output_dir": str(tmp / "outputs"),
            "input_dir": str(tmp / "inputs"),
            "models_dir": str(tmp / "models"),
        },
        "workers": {"local": 0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(None, base)


def app_client(tmp: Path, **sections: dict[str, Any]) -> TestClient:
    return TestClient(create_app(settings_in(tmp, **sections)))


def gateway_proc(root: Path, *extra: str, env: dict[str, str] | None = None) -> Proc:
    """A real ``ablerefusal serve`` with no worker (not started: call ``.start()``)."""
    port = free_port()
    args = [
        sys.executable, "-m", "ablerefusal", "serve",
        "--port", str(port),
        "--no-local-worker",
        "--models-dir", str(root / "models"),
        "--output-dir", str(root / "outputs"),
        "--input-dir", str(root / "inputs"),
        "--database-url", f"sqlite:///{root / 'jobs.db'}",
        *extra,
    ]  # fmt: skip
    return Proc(args, port=port, log_path=root / "gateway.log", ready_path="/api/v1/health", env=env)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def ztxt(key: str, text: bytes) -> bytes:
    """A zTXt chunk: ``text`` deflated, which is how a few hundred bytes carry a megabyte of text."""
    return _chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(text, 9))


def png(*chunks: bytes, width: int = 1, height: int = 1) -> bytes:
    """A minimal valid grey PNG with ``chunks`` before its image data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0\0", 9)
    return b"".join(
        [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), *chunks, _chunk(b"IDAT", pixels), _chunk(b"IEND", b"")]
    )
