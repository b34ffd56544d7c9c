"""Every ``ABLEREFUSAL_*`` variable that compose.yaml, the Dockerfiles and the Kubernetes manifests set names a
real setting: both settings classes ignore or refuse unknown keys at start, and a misspelt variable in a
deployment would otherwise just be lost."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import COMPOSE, DOCKERFILES, by_kind, containers, env_of, render

from ablerefusal.gateway.settings import Settings
from ablerefusal.worker.settings import WorkerSettings

ASSIGNED = re.compile(r"\b(ABLEREFUSAL_[A-Z0-9_]+)=")


def setting_of(variable: str) -> str | None:
    """The dotted setting a variable sets, or None when it sets none."""
    if variable.startswith("ABLEREFUSAL_WORKER_"):
        name = variable.removeprefix("ABLEREFUSAL_WORKER_").lower()
        return f"worker.{name}" if name in WorkerSettings.model_fields else None
    model: Any = Settings
    path = variable.removeprefix("ABLEREFUSAL_").lower().split("__")
    for part in path:
        if not hasattr(model, "model_fields") or part not in model.model_fields:
            return None
        model = model.model_fields[part].annotation
    return ".".join(path)


def test_the_check_knows_real_from_misspelt() -> None:
    assert setting_of("ABLEREFUSAL_WORKERS__URLS") == "workers.urls"
    assert setting_of("ABLEREFUSAL_WORKER_TOKEN") == "worker.token"
    assert setting_of("ABLEREFUSAL_WORKERS__URL") is None
    assert setting_of("ABLEREFUSAL_WORKER_MODEL_DIR") is None
    assert setting_of("ABLEREFUSAL_SERVER__HOST__NAME") is None


def _compose_variables() -> set[str]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {name for service in services.values() for name in service.get("environment", {})}


def _dockerfile_variables(dockerfile: Path) -> set[str]:
    code = "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#"))
    # Read by the wheel build (hatch_build.py), not by the settings.
    return set(ASSIGNED.findall(code)) - {"ABLEREFUSAL_WHEEL_WITHOUT_UI"}


def _manifest_variables(tmp: Path) -> set[str]:
    names: set[str] = set()
    for overlay in ("base", "overlays/gpu"):
        docs = render(overlay, tmp / overlay.replace("/", "-"))
        for kind in ("Deployment", "StatefulSet", "Job"):
            for doc in by_kind(docs, kind).values():
                for container in containers(doc):
                    names |= set(env_of(container))
    return names


@pytest.mark.parametrize("source", ["compose", "dockerfiles", "kubernetes"])
def test_every_variable_sets_a_setting(source: str, tmp_path: Path) -> None:
    if source == "compose":
        variables = _compose_variables()
    elif source == "dockerfiles":
        variables = set().union(*(_dockerfile_variables(d) for d in DOCKERFILES))
    else:
        variables = _manifest_variables(tmp_path)
    variables = {v for v in variables if v.startswith("ABLEREFUSAL_")}
    assert variables, "nothing found: the parser is broken"
    unknown = sorted(v for v in variables if setting_of(v) is None)
    assert not unknown, f"{source} sets variables no setting reads: {unknown}"
