"""Key rules shared by both backends: plain name segments only, and the type follows the suffix."""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def check_key(key: str) -> str:
    """``key`` if every segment is a plain file name, else ValueError (no ``..``, no absolute or empty parts)."""
    segments = key.split("/")
    if not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise ValueError(f"invalid storage key {key!r}: segments must be plain file names")
    return key


def content_type_of(key: str) -> str:
    suffix = key[key.rfind(".") :].lower() if "." in key else ""
    return CONTENT_TYPES.get(suffix, "application/octet-stream")
