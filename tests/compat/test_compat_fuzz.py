"""Property-based fuzz of the compat APIs' OpenAPI operations against a real gateway process with no
worker: whatever the input, no 5xx except the documented 503 "no models" of the generating endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from compat_live import gateway_proc

from procs import Proc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bare_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    root = tmp_path_factory.mktemp("compat-fuzz")
    with gateway_proc(root, root / "models", workers=0, api_key=None).start(timeout=120) as proc:
        yield proc


def _documented_no_models(status: int, body: Any) -> bool:
    if status != 503 or not isinstance(body, dict):
        return False
    # A1111's error shape carries it in detail, OpenAI's in error.code.
    return "no models" in str(body.get("detail", "")) or body.get("error", {}).get("code") == "no_models"


@pytest.mark.timeout(240)
def test_fuzz_compat_operations_no_server_errors(bare_gateway: Proc) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.core.result import Ok

    schema = schemathesis.openapi.from_url(f"{bare_gateway.url}/openapi.json")
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schema operation did not load: {result}"
        operation = result.ok()
        if not operation.path.startswith(("/sdapi/", "/v1/")):
            continue  # /api/v1 is fuzzed by tests/integration/test_gateway_alone.py

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            resp = case.call(timeout=30)
            if resp.status_code < 500:
                return
            try:
                body = resp.json()
            except ValueError:
                body = None
            if not _documented_no_models(resp.status_code, body):
                failures.append(f"{case.method} {case.formatted_path} -> {resp.status_code}: {resp.text[:200]}")

        run()
        checked += 1
    assert checked >= 15  # every compat operation was exercised
    assert failures == [], "\n".join(failures[:10])
