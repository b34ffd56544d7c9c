"""Security finding 1, measured: how long the ~250-byte ``/sdapi/v1/png-info`` attack body takes to answer,
and how long ``/api/v1/health`` takes while it is being parsed. Starts a real gateway (no worker).

    .venv/bin/python benchmarks/pnginfo_attack.py            # this tree
    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/pnginfo_attack.py   # another version

Prints one line of figures; never part of the test suite.
"""

from __future__ import annotations

import base64
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx

from platform_util import free_port, wait_ready

# The attack text: one long key-like run, which A1111's infotext regex backtracks over quadratically.
ATTACK_TEXT = b"a" * 65_000


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def attack_png() -> bytes:
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    text = _chunk(b"zTXt", b"parameters\0\0" + zlib.compress(ATTACK_TEXT, 9))
    pixels = _chunk(b"IDAT", zlib.compress(b"\0\0", 9))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + text + pixels + _chunk(b"IEND", b"")


def main() -> None:
    body = json.dumps({"image": base64.b64encode(attack_png()).decode()})
    root = Path(tempfile.mkdtemp(prefix="pnginfo-attack-"))
    port = free_port()
    argv = [
        sys.executable, "-m", "ablerefusal", "serve", "--port", str(port), "--no-local-worker",
        "--database-url", f"sqlite:///{root / 'jobs.db'}", "--output-dir", str(root / "out"),
        "--models-dir", str(root / "models"),
    ]  # fmt: skip
    log = root / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/api/v1/health", proc, log, 120)
        latencies: list[float] = []
        done = threading.Event()

        def poll_health() -> None:
            with httpx.Client(base_url=url, timeout=3600) as client:
                while not done.is_set():
                    start = time.perf_counter()
                    client.get("/api/v1/health")
                    latencies.append(time.perf_counter() - start)

        poller = threading.Thread(target=poll_health)
        with httpx.Client(base_url=url, timeout=3600) as client:
            client.get("/api/v1/health")  # warm the connection path
            poller.start()
            start = time.perf_counter()
            resp = client.post("/sdapi/v1/png-info", content=body, headers={"Content-Type": "application/json"})
            elapsed = time.perf_counter() - start
        done.set()
        poller.join()
        print(
            f"body {len(body)} B -> png-info {resp.status_code} in {elapsed:.3f} s; health during it: "
            f"{len(latencies)} answers, median {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
