"""deploy/docker: every Dockerfile passes hadolint, compose.yaml is valid under the Compose specification, and
the images keep their promises (pinned bases, non-root, health checks, no torch in the gateway)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import COMPOSE, DOCKERFILES, ROOT, run, tool

# name:tag@sha256:<64 hex>: a tag for people, a digest so a re-pushed tag cannot change what we build on.
PINNED = re.compile(r"^[a-z0-9][a-z0-9./_-]*:[\w.-]+@sha256:[0-9a-f]{64}$")


def test_the_three_images_are_there() -> None:
    assert [p.name for p in DOCKERFILES] == ["gateway.Dockerfile", "worker-cpu.Dockerfile", "worker-cuda.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    # Default failure threshold: any finding, down to style, fails.
    result = run(tool("hadolint"), "--no-color", str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = run(tool("hadolint"), "--no-color", str(bad))
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the latest tag
    assert "DL3009" in result.stdout or "DL3015" in result.stdout  # apt lists left behind / recommends


def _stages(dockerfile: Path) -> list[tuple[str, str, list[str]]]:
    """(base image with ARG defaults filled in, stage name or '', the stage's instructions)."""
    args: dict[str, str] = {}
    stages: list[tuple[str, str, list[str]]] = []
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "ARG" and not stages and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif word.upper() == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            stages.append((image, parts[2] if len(parts) > 2 else "", []))
        elif stages:
            stages[-1][2].append(line)
    return stages


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_multi_stage_with_pinned_bases(dockerfile: Path) -> None:
    stages = _stages(dockerfile)
    names = {name for _, name, _ in stages if name}
    assert len(stages) >= 2, "build tools stay out of the final image"
    for image, _, _ in stages:
        assert image in names or PINNED.match(image), f"{dockerfile.name}: base {image!r} is not pinned by digest"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_runs_as_non_root_with_a_healthcheck(dockerfile: Path) -> None:
    final = _stages(dockerfile)[-1][2]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{dockerfile.name}: runs as root"
    checks = [line for line in final if line.upper().startswith("HEALTHCHECK ")]
    assert len(checks) == 1 and " CMD " in checks[0]


def test_gateway_image_builds_the_ui_and_installs_no_torch() -> None:
    gateway = ROOT / "deploy" / "docker" / "gateway.Dockerfile"
    stages = _stages(gateway)
    assert any("npm run build" in line for _, _, lines in stages for line in lines)
    text = "\n".join(line for _, _, lines in stages for line in lines)
    assert "torch" not in text and "[inference]" not in text


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_is_valid_under_the_compose_specification() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  gateway:\n    image: x\n    prots: ['8080:8080']\n  worker:\n    image: y\n"
                      "    ports: 8080\n")  # fmt: skip
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0
    assert "'prots' was unexpected" in result.stdout and "8080 is not of type 'array'" in result.stdout


def test_compose_runs_the_platform() -> None:
    services = _compose()["services"]
    expected = {"postgres", "seaweedfs", "create-bucket", "migrate", "gateway", "worker-cpu", "worker-cuda"}
    assert expected <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for first in ("migrate", "create-bucket"):
        assert services["gateway"]["depends_on"][first]["condition"] == "service_completed_successfully"
    gateway = services["gateway"]["environment"]
    assert gateway["ABLEREFUSAL_STORAGE__BACKEND"] == "s3"
    assert gateway["ABLEREFUSAL_STORAGE__S3__ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert "-s3" in services["seaweedfs"]["command"]
    # Exactly one worker runs, whichever profile is chosen, under the name the gateway calls.
    assert services["gateway"]["environment"]["ABLEREFUSAL_WORKERS__URLS"] == '["http://worker:8001"]'
    for name, profile in (("worker-cpu", "cpu"), ("worker-cuda", "gpu")):
        assert services[name]["profiles"] == [profile]
        assert services[name]["networks"]["default"]["aliases"] == ["worker"]
        assert any(v.endswith(":/app/models:ro") for v in services[name]["volumes"]), "models mount read-only"
    gpu = services["worker-cuda"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name, service in services.items():
        if "build" not in service:
            assert PINNED.match(service["image"]), f"{name}: image {service['image']!r} is not pinned by digest"
