"""The gateway never imports torch or diffusers: it must install and run without them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHECK = """
import json, sys
from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings
import ablerefusal.gateway.cli, ablerefusal.gateway.serve, ablerefusal.gateway.openapi_dump
create_app(Settings()).openapi()
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'diffusers', 'transformers'})))
"""


@pytest.mark.timeout(120)
def test_gateway_imports_no_torch() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.timeout(120)
def test_openapi_dump_is_deterministic() -> None:
    cmd = [sys.executable, "-m", "ablerefusal.gateway.openapi_dump"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert first == second
    schema = json.loads(first)
    assert list(schema) == sorted(schema)
    for path in ["/api/v1/generate", "/api/v1/generate/{job_id}/events", "/api/v1/queue", "/api/v1/models"]:
        assert path in schema["paths"]
    described = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert all(prop.get("description") for prop in described.values())
