"""A zip of several images, written as it streams: no temporary file, no whole archive in memory."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator


class _Chunks:
    """A write-only, unseekable file: zipfile then writes data descriptors instead of seeking back."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.written = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def zip_stream(entries: list[tuple[str, str]], read: Callable[[str], bytes | None]) -> Iterator[bytes]:
    """Zip chunks of ``(name in archive, object key)`` pairs, one image at a time; a key ``read`` no longer
    finds (deleted meanwhile) is left out. PNGs are already compressed: stored, not deflated."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, key in entries:
            data = read(key)
            if data is None:
                continue
            archive.writestr(name, data)
            yield sink.take()
    yield sink.take()
