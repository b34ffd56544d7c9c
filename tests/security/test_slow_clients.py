"""Finding 11, slow clients: a client that sends half its headers (or half its body) and then nothing held
its connection for ever. Header and body reads now have deadlines (set short here), after which the gateway
answers 408 and closes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from security_util import gateway_proc

from procs import Proc

pytestmark = pytest.mark.integration

SHORT = {"ABLEREFUSAL_SERVER__HEADER_TIMEOUT_S": "1", "ABLEREFUSAL_SERVER__BODY_TIMEOUT_S": "1"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with gateway_proc(tmp_path_factory.mktemp("slow"), env=SHORT).start(timeout=120) as proc:
        yield proc


def _send_and_read_all(proc: Proc, data: bytes) -> bytes:
    """Send ``data``, then nothing; what the server sends until it closes. The socket timeout only stops a
    hung test: a gateway that never closes fails by it."""
    with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_half_sent_headers_are_cut_off(gateway: Proc) -> None:
    answer = _send_and_read_all(gateway, b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_silent_connection_is_cut_off(gateway: Proc) -> None:
    assert _send_and_read_all(gateway, b"").startswith(b"HTTP/1.1 408 ")


def test_half_sent_body_is_cut_off(gateway: Proc) -> None:
    head = (
        b"POST /api/v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    answer = _send_and_read_all(gateway, head + b'{"prompt": ')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"server.body_timeout_s" in answer


def test_idle_keep_alive_then_slow_headers_are_cut_off(gateway: Proc) -> None:
    # A first request is answered; the deadline then applies to the next request's headers too.
    first = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer = _send_and_read_all(gateway, first + b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in answer
