"""Shared by the deploy/ checks: where things are, how to run the linters the dev extra installs, and how to
render the kustomize tree.

Base images cannot be pulled here and no cluster runs, so the checks lint and validate: hadolint for the
Dockerfiles, the Compose specification's JSON schema (vendored by check-jsonschema) for compose.yaml, and
kubectl's built-in kustomize plus kubernetes-validate's offline schemas for the manifests.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
KUBERNETES = ROOT / "deploy" / "kubernetes"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
COMPOSE = DOCKER / "compose.yaml"
# The newest Kubernetes the installed kubernetes-validate ships schemas for is checked by the tests.
KUBERNETES_VERSION = "1.37.0"


def tool(name: str) -> str:
    """A console script of the dev extra (hadolint, kubectl, check-jsonschema), from this interpreter's
    environment first: `make test` does not put the venv on PATH."""
    local = Path(sysconfig.get_path("scripts")) / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make install` (it comes with the dev extra)")
    return found


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def render(overlay: str, workdir: Path, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of ``deploy/kubernetes/<overlay>`` in a copy whose secrets/*.env are the examples
    (the real ones are the operator's and never in the repository); ``extra`` adds files to the copy."""
    tree = workdir / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns("*.env"))
    for example in tree.glob("base/secrets/*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    for name, text in (extra or {}).items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    result = run(tool("kubectl"), "kustomize", str(tree / overlay))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    return found


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}
