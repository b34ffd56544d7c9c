"""deploy/kubernetes: the base and the GPU overlay render with kustomize (kubectl's built-in one), every
rendered object is valid against the Kubernetes schemas (kubernetes-validate, offline, strict), and the
objects wire together: probes on the right paths, Secret and ConfigMap references that resolve, worker URLs
that name the worker pods, hardened pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_tools import KUBERNETES, KUBERNETES_VERSION, ROOT, by_kind, containers, env_of, render, run

from ablerefusal.gateway.settings import Settings

OVERLAYS = ["base", "overlays/gpu"]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(request.param, tmp_path_factory.mktemp("kustomize"))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render("base", tmp_path_factory.mktemp("kustomize"))


@pytest.fixture(scope="module")
def gpu(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render("overlays/gpu", tmp_path_factory.mktemp("kustomize"))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_validator_knows_this_kubernetes_version() -> None:
    assert _version(kubernetes_validate.latest_version()) >= _version(KUBERNETES_VERSION)


def test_every_manifest_is_valid_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 15
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_wrong_manifest(base: list[dict[str, Any]]) -> None:
    deployment = next(doc for doc in base if doc["kind"] == "Deployment")
    wrong = yaml.safe_load(yaml.safe_dump(deployment))
    wrong["spec"]["replicas"] = "two"
    wrong["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def _probe_path(container: dict[str, Any], probe: str) -> str:
    path: str = container[probe]["httpGet"]["path"]
    return path


def test_gateway_deployment_service_ingress_hpa_pdb(base: list[dict[str, Any]]) -> None:
    deployment = by_kind(base, "Deployment")["ablerefusal-gateway"]
    assert deployment["spec"]["replicas"] >= 2
    gateway = containers(deployment)[0]
    assert _probe_path(gateway, "readinessProbe") == "/api/v1/ready"
    assert _probe_path(gateway, "livenessProbe") == "/api/v1/health"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = by_kind(base, "Service")["ablerefusal-gateway"]
    assert service["spec"]["selector"].items() <= labels.items()
    ingress = by_kind(base, "Ingress")["ablerefusal-gateway"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    hpa = by_kind(base, "HorizontalPodAutoscaler")["ablerefusal-gateway"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = by_kind(base, "PodDisruptionBudget")["ablerefusal-gateway"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_migration_job_upgrades_the_job_store(base: list[dict[str, Any]]) -> None:
    job = by_kind(base, "Job")["ablerefusal-migrate"]
    migrate = containers(job)[0]
    assert migrate["args"] == ["db", "upgrade"]
    assert migrate["image"] == containers(by_kind(base, "Deployment")["ablerefusal-gateway"])[0]["image"]
    assert "ABLEREFUSAL_STORAGE__DATABASE_URL" in env_of(migrate)


def test_config_map_is_a_valid_gateway_config(base: list[dict[str, Any]]) -> None:
    (config_map,) = by_kind(base, "ConfigMap").values()
    data = yaml.safe_load(config_map["data"]["config.yaml"])
    _known_keys(data, Settings)
    settings = Settings(**data)
    assert settings.server.host == "0.0.0.0" and settings.workers.local == 0
    # Gateways keep nothing on their pods: images go to the bucket, whose keys come from a Secret.
    assert settings.storage.backend == "s3" and settings.storage.s3.bucket
    gateway = env_of(containers(by_kind(base, "Deployment")["ablerefusal-gateway"])[0])
    for key in ("ABLEREFUSAL_STORAGE__S3__ACCESS_KEY_ID", "ABLEREFUSAL_STORAGE__S3__SECRET_ACCESS_KEY"):
        assert gateway[key]["valueFrom"]["secretKeyRef"]["name"].startswith("ablerefusal-s3")


def _known_keys(data: dict[str, Any], model: Any, where: str = "") -> None:
    # Settings ignores unknown keys; a typo in a deployed config must not pass silently.
    for key, value in data.items():
        assert key in model.model_fields, f"config.yaml: unknown key {where}{key}"
        annotation = model.model_fields[key].annotation
        if isinstance(value, dict) and hasattr(annotation, "model_fields"):
            _known_keys(value, annotation, f"{where}{key}.")


def test_every_secret_and_config_reference_resolves(rendered: list[dict[str, Any]]) -> None:
    secrets = {name: set(doc.get("data", {})) for name, doc in by_kind(rendered, "Secret").items()}
    config_maps = set(by_kind(rendered, "ConfigMap"))
    claims = set(by_kind(rendered, "PersistentVolumeClaim"))
    accounts = set(by_kind(rendered, "ServiceAccount"))
    for doc in rendered:
        if doc["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in accounts
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["key"] in secrets.get(ref["name"], set()), f"{doc['kind']}: {item['name']} → {ref}"
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_workers_never_see_api_keys_or_the_database(rendered: list[dict[str, Any]]) -> None:
    worker = by_kind(rendered, "StatefulSet")["ablerefusal-worker"]
    refs = {item["valueFrom"]["secretKeyRef"]["name"] for item in containers(worker)[0]["env"] if "valueFrom" in item
            and "secretKeyRef" in item["valueFrom"]}  # fmt: skip
    assert len(refs) == 1 and next(iter(refs)).startswith("ablerefusal-worker-token")


def test_pods_are_hardened(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        if doc["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]


def _worker_urls(docs: list[dict[str, Any]]) -> list[str]:
    gateway = containers(by_kind(docs, "Deployment")["ablerefusal-gateway"])[0]
    urls: list[str] = yaml.safe_load(env_of(gateway)["ABLEREFUSAL_WORKERS__URLS"]["value"])
    return urls


def test_workers_read_models_read_only_and_are_probed(rendered: list[dict[str, Any]]) -> None:
    worker = by_kind(rendered, "StatefulSet")["ablerefusal-worker"]
    container = containers(worker)[0]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["models"]["readOnly"] is True
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True
    assert _probe_path(container, "livenessProbe") == "/v1/health"
    # /v1/ready needs the worker token, so the readiness probe asks from inside with it.
    readiness = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "/v1/ready" in readiness and "ABLEREFUSAL_WORKER_TOKEN" in readiness
    assert "ABLEREFUSAL_WORKER_TOKEN" in env_of(container)


def test_gateway_lists_every_worker_pod(rendered: list[dict[str, Any]]) -> None:
    worker = by_kind(rendered, "StatefulSet")["ablerefusal-worker"]
    service = by_kind(rendered, "Service")[worker["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    name, replicas = worker["metadata"]["name"], worker["spec"]["replicas"]
    port = containers(worker)[0]["ports"][0]["containerPort"]
    expected = [f"http://{name}-{i}.{service['metadata']['name']}:{port}" for i in range(replicas)]
    assert _worker_urls(rendered) == expected


def test_gpu_overlay_gives_each_cuda_worker_one_gpu(gpu: list[dict[str, Any]], base: list[dict[str, Any]]) -> None:
    worker = containers(by_kind(gpu, "StatefulSet")["ablerefusal-worker"])[0]
    assert worker["image"].startswith("ablerefusal-worker-cuda:")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env_of(worker)["ABLEREFUSAL_WORKER_DEVICE"]["value"] == "cuda"
    base_worker = containers(by_kind(base, "StatefulSet")["ablerefusal-worker"])[0]
    assert "nvidia.com/gpu" not in base_worker["resources"].get("limits", {})
    assert env_of(base_worker)["ABLEREFUSAL_WORKER_DEVICE"]["value"] == "cpu"


def test_real_secrets_are_git_ignored() -> None:
    secrets = ["deploy/kubernetes/base/secrets/api-keys.env", "deploy/docker/.env"]
    result = run("git", "check-ignore", *secrets, cwd=ROOT)
    assert result.stdout.split() == secrets, result.stderr


def test_the_overlay_docs_deploy_md_shows_renders(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    marker = "# deploy/kubernetes/overlays/mine/kustomization.yaml\n"
    start = doc.index(marker)
    example = doc[start : doc.index("```", start)]
    overlay = KUBERNETES / "overlays" / "mine"
    assert not overlay.exists(), "the example overlay is the operator's, not the repository's"
    # Step 1 of the walk-through: a copy of the base configuration beside the overlay.
    config = (KUBERNETES / "base" / "config.yaml").read_text()
    docs = render("overlays/mine", tmp_path, extra={"overlays/mine/kustomization.yaml": example,
                                                     "overlays/mine/config.yaml": config})  # fmt: skip
    for item in docs:
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
    gateway = containers(by_kind(docs, "Deployment")["ablerefusal-gateway"])[0]
    assert gateway["image"] == "registry.example.com/ablerefusal-gateway:0.1.0"
    assert by_kind(docs, "Ingress")["ablerefusal-gateway"]["spec"]["rules"][0]["host"] == "sd.example.com"
