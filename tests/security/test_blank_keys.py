"""Finding 4: ``--api-key ""`` (an unset variable in a start script) satisfied the network-bind guard and made
A1111 Basic auth accept any user with an empty password. A blank key now stops the start."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from security_util import app_client, settings_in


@pytest.mark.parametrize("keys", [[""], ["   "], ["good-key", ""]])
def test_settings_refuse_blank_keys(tmp_path: Path, keys: list[str]) -> None:
    with pytest.raises(ValidationError, match="blank API keys are refused"):
        settings_in(tmp_path, auth={"api_keys": keys})


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--api-key", ""], {}),
        ([], {"ABLEREFUSAL_AUTH__API_KEYS": '[""]'}),
    ],
    ids=["flag", "environment"],
)
def test_serve_on_the_network_with_a_blank_key_does_not_start(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    # The attack: a network bind whose only key is blank. Before, the bind guard saw "a key" and started.
    argv = [
        sys.executable, "-m", "ablerefusal", "serve", "--host", "0.0.0.0", "--port", "0", "--no-local-worker",
        "--database-url", f"sqlite:///{tmp_path / 'jobs.db'}", "--output-dir", str(tmp_path / "out"), *args,
    ]  # fmt: skip
    proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "auth.api_keys" in proc.stderr and "blank API keys are refused" in proc.stderr
    assert "gateway ready" not in proc.stdout


def test_basic_auth_with_an_empty_password_is_refused(tmp_path: Path) -> None:
    empty_password = "Basic " + base64.b64encode(b"anyone:").decode()
    with app_client(tmp_path, auth={"api_keys": ["real-key"]}) as client:
        assert client.get("/sdapi/v1/samplers", headers={"Authorization": empty_password}).status_code == 401
        good = "Basic " + base64.b64encode(b"anyone:real-key").decode()
        assert client.get("/sdapi/v1/samplers", headers={"Authorization": good}).status_code == 200
