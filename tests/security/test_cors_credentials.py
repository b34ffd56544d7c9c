"""Finding 8: CORS ``*`` with credentials reflected any Origin (even ``null``) with
``Access-Control-Allow-Credentials: true``. That combination is refused at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from security_util import app_client, settings_in

WILDCARD_WITH_CREDENTIALS = {"enable_cors": True, "cors_origins": ["*"], "cors_allow_credentials": True}


def test_settings_refuse_wildcard_with_credentials(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cors_origins '\*' together with server\.cors_allow_credentials"):
        settings_in(tmp_path, server=WILDCARD_WITH_CREDENTIALS)


def test_serve_with_wildcard_and_credentials_does_not_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ABLEREFUSAL_SERVER__ENABLE_CORS": "true",
        "ABLEREFUSAL_SERVER__CORS_ORIGINS": '["*"]',
        "ABLEREFUSAL_SERVER__CORS_ALLOW_CREDENTIALS": "true",
    }
    argv = [
        sys.executable, "-m", "ablerefusal", "serve", "--port", "0", "--no-local-worker",
        "--database-url", f"sqlite:///{tmp_path / 'jobs.db'}", "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "cors_allow_credentials" in proc.stderr and "gateway ready" not in proc.stdout


@pytest.mark.parametrize(
    "server",
    [
        {"enable_cors": True, "cors_origins": ["*"], "cors_allow_credentials": False},
        {"enable_cors": True, "cors_origins": ["https://app.example"], "cors_allow_credentials": True},
    ],
    ids=["wildcard-without-credentials", "listed-origin-with-credentials"],
)
def test_the_safe_combinations_still_work(tmp_path: Path, server: dict[str, object]) -> None:
    with app_client(tmp_path, server=server) as client:
        resp = client.get("/api/v1/health", headers={"Origin": "null"})
        # A credentialed answer never goes to an origin nobody listed.
        assert resp.headers.get("access-control-allow-credentials") != "true" or (
            resp.headers.get("access-control-allow-origin") not in ("null", "*")
        )
        listed = client.get("/api/v1/health", headers={"Origin": "https://app.example"})
        assert listed.headers.get("access-control-allow-origin") in ("*", "https://app.example")
