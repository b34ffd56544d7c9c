"""A gateway process's id in the fleet: lease holder, origin of its notifications, caller of its workers."""

from __future__ import annotations

import os
import secrets
import socket


def new_gateway_id() -> str:
    """Host, pid and a random suffix: a restarted gateway (same host, maybe the same pid in a container) is a
    new id, so nothing the dead one held is mistaken for its own."""
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(4)}"
