"""Finding 5: the gateway answered any ``Host``, so a web page that rebinds its name to 127.0.0.1 could read
and submit jobs on a default, key-less install. Real gateway processes, raw HTTP (the attack sets Host)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from security_util import gateway_proc

from ablerefusal.gateway.security.hosts import default_allowed_hosts, host_allowed, host_name
from procs import Proc

pytestmark = pytest.mark.integration


def request(proc: Proc, method: str, path: str, host: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=60)
    headers = {"Host": host, "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else None


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with gateway_proc(tmp_path_factory.mktemp("rebind-default")).start(timeout=120) as proc:
        yield proc


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.1.attacker.example", ""])
def test_rebound_names_are_refused(default_gateway: Proc, host: str) -> None:
    host = host.format(port=default_gateway.port)
    status, body = request(default_gateway, "GET", "/api/v1/queue", host)
    assert status == 400
    assert body["error"]["code"] == "invalid_host"
    assert body["error"]["details"] == [{"field": "Host", "message": "must name this gateway (server.allowed_hosts)"}]
    status, _ = request(default_gateway, "POST", "/api/v1/generate", host, {"prompt": "rebound"})
    assert status == 400
    status, _ = request(default_gateway, "POST", "/sdapi/v1/interrupt", host)
    assert status == 400
    _, queue = request(default_gateway, "GET", "/api/v1/queue", f"127.0.0.1:{default_gateway.port}")
    assert queue["counts"]["queued"] == 0


def _websocket_handshake(proc: Proc, host: str) -> bytes:
    handshake = (
        f"GET /api/v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as sock:
        sock.sendall(handshake.encode())
        return sock.recv(4096)


def test_rebound_names_cannot_open_a_websocket(default_gateway: Proc) -> None:
    assert _websocket_handshake(default_gateway, "attacker.example").startswith(b"HTTP/1.1 403 ")
    assert _websocket_handshake(default_gateway, f"127.0.0.1:{default_gateway.port}").startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "localhost."])
def test_loopback_names_are_answered(default_gateway: Proc, host: str) -> None:
    status, _ = request(default_gateway, "GET", "/api/v1/queue", host.format(port=default_gateway.port))
    assert status == 200


def test_configured_names_replace_the_defaults(tmp_path: Path) -> None:
    env = {"ABLEREFUSAL_SERVER__ALLOWED_HOSTS": '["127.0.0.1", "sd.example.org", "*.lan.example"]'}
    with gateway_proc(tmp_path, env=env).start(timeout=120) as proc:
        assert request(proc, "GET", "/api/v1/queue", "sd.example.org")[0] == 200
        assert request(proc, "GET", "/api/v1/queue", "box.lan.example:8443")[0] == 200
        assert request(proc, "GET", "/api/v1/queue", "localhost")[0] == 400
        assert request(proc, "GET", "/api/v1/queue", "lan.example.attacker.example")[0] == 400


def test_defaults_follow_the_bind_address_and_public_url() -> None:
    assert default_allowed_hosts("10.0.0.5", "https://sd.example.org:8443/sd") == [
        "localhost",
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "sd.example.org",
    ]
    assert "fd00::5" in (default_allowed_hosts("fd00::5", None) or [])
    # Bound to every interface, the gateway cannot know its names (and needs keys or --insecure there).
    assert default_allowed_hosts("0.0.0.0", None) is None
    assert host_name("[::1]:8080") == "::1" and host_name("Example.ORG.:80") == "example.org"
    assert not host_allowed("example.org", ["*.example.org"])
