"""Training runs and model versions recorded in MLflow, the registry MLOps teams already browse.

Both sides write here and neither needs the other: `python -m export retrain` records each
run (recipe, data hash, code version, the gate's metrics, the report as an artifact) and, for
a candidate that passed, a version of the registered model; the orchestrator mirrors its
versions' rollout states after each move (POST /v1/model/canary, promote, rollback).

MLflow numbers a registered model's versions itself (1, 2, ... in creation order) and cannot
be told a number, so each version carries the Triton version folder it stands for as the tag
`triton_version`, and is found by that tag. A state that one version holds at a time is an
alias (`production`, `canary`, `candidate`: the newest candidate, as staging keys meet it);
every version also carries its state as the tag `state`, which is where `archived` and
`rolled_back` show. The Triton repository stays the serving copy: nothing is served from here.

MLflow is imported on first use, never at import time: it takes seconds to import, and the
orchestrator imports this module on its start.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import PROJECT_ROOT

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


MLFLOW_DIR = PROJECT_ROOT / "var" / "mlflow"
DEFAULT_TRACKING_URI = f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}"
TRITON_VERSION = "triton_version"  # tag: the Triton version folder a model version stands for
STATE = "state"  # tag: candidate, canary, production, archived or rolled_back
ALIASED_STATES = ("candidate", "canary", "production")  # held by one version at a time
TAG_LIMIT = 5000  # characters; MLflow refuses longer tag values


class RegistrySettings(BaseSettings):
    """Where runs and versions are recorded (`REGISTRY_*`; MLflow's own `MLFLOW_TRACKING_URI`
    names the store, as in every MLflow tool)."""

    model_config = SettingsConfigDict(env_prefix="REGISTRY_", populate_by_name=True)

    enabled: bool = True
    # A local SQLite file by default; `http://mlflow:5000` where an MLflow server runs.
    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "REGISTRY_TRACKING_URI"),
    )
    # Artifacts of a local store; an MLflow server keeps them where it was told to.
    artifact_root: Path = MLFLOW_DIR / "artifacts"
    experiment: str = "ticket_triage_retrain"
    model: str = "ticket_triage"  # the registered model: the Triton ensemble's name
    timeout_s: float = Field(default=10.0, gt=0)  # the orchestrator waits this long, no more


@dataclass(frozen=True)
class Recorded:
    run_id: str
    version: str | None  # the registered model version (MLflow's number), when one was made


# ---- training runs (export) ------------------------------------------------------------------
def log_training_run(settings: RegistrySettings, report: dict, report_path: Path) -> Recorded:
    """One run per retrain: its recipe as params, data and code as tags, the gate's figures
    as metrics, the model card (or refusal report) as an artifact. A candidate that passed
    also becomes a version of the registered model with the alias `candidate`."""
    client = make_client(settings)
    run = client.create_run(
        experiment_id(client, settings),
        run_name=f"retrain {report['data']['content_hash'][:12]}",
        tags=run_tags(report, report_path),
    )
    run_id = run.info.run_id
    try:
        _log_figures(client, run_id, report)
        client.log_artifact(run_id, str(report_path), artifact_path="report")
        version = None
        if report["status"] == "passed":
            version = register_candidate(client, settings, run, report, report_path)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return Recorded(run_id, version)


def run_params(report: dict) -> dict[str, str]:
    """The recipe and the gate's criteria: what to change to get another candidate."""
    params = {f"recipe.{k}": v for k, v in report["recipe"].items()}
    params.update({f"gate.{k}": v for k, v in report["gate"]["metrics"]["criteria"].items()})
    return {key: str(value) for key, value in params.items()}


def run_tags(report: dict, report_path: Path) -> dict[str, str]:
    """What the run was made from (data, code, production it was gated against) and how
    the gate ended; the reasons of a refusal are the tag `gate.reasons`."""
    data, production = report["data"], report["production"]
    tags = {
        "status": report["status"],
        "data.content_hash": data["content_hash"],
        "data.test_hash": data.get("test_hash"),
        "data.snapshot": data["snapshot"],
        "data.shuffled_labels": data["shuffled_labels"],
        "code_version": report.get("code_version"),
        "production.repository": production["repository"],
        **{f"production.{k}": v for k, v in production.items() if k != "repository"},
        "report_path": report_path,
    }
    if report["gate"]["reasons"]:
        tags["gate.reasons"] = "\n".join(report["gate"]["reasons"])[:TAG_LIMIT]
    return {key: str(value) for key, value in tags.items() if value is not None}


def run_metrics(report: dict) -> dict[str, float]:
    """The gate's accuracies (per evaluation set) and latencies, the fp32 export's accuracy,
    training time and the ONNX parity: the numbers runs are compared by."""
    gate = report["gate"]["metrics"]
    metrics = {
        f"{name}.{key}": value
        for name, figures in gate["sets"].items()
        for key, value in figures.items()
    }
    metrics.update({f"latency.{key}": value for key, value in gate["latency"].items()})
    metrics["recall.intents_checked"] = gate.get("intents_checked", 0)
    metrics["recall.intents_over_margin"] = len(gate.get("recall_drops_over_margin", {}))
    metrics["recall.intents_refused"] = len(gate.get("recall_drops_refused", {}))
    metrics["candidate_fp32.test_accuracy"] = report["candidate_fp32_test_accuracy"]
    metrics["train.seconds"] = report["train"]["seconds"]
    metrics.update({f"parity.{key}": value for key, value in report["parity"].items()})
    return {key: float(value) for key, value in metrics.items() if _number(value)}


def register_candidate(
    client: "MlflowClient", settings: RegistrySettings, run, report: dict, card: Path
) -> str:
    """A version of the registered model for a candidate that passed, pointing at the run's
    copy of its card; the Triton files stay where retrain wrote them, named in tags."""
    ensure_registered_model(client, settings.model)
    versions = report.get("versions", {})
    tags = {
        TRITON_VERSION: triton_version(report),
        STATE: "candidate",
        "triton.repository": card.parents[2],  # <repository>/ticket_classifier/<c>/card
        "triton.files": " ".join(sorted(report.get("files", {}))),
        "data.content_hash": report["data"]["content_hash"],
        **{f"triton.{model}": v for model, v in versions.items()},
    }
    created = client.create_model_version(
        settings.model,
        source=f"{run.info.artifact_uri}/report",
        run_id=run.info.run_id,
        tags={key: str(value)[:TAG_LIMIT] for key, value in tags.items()},
        description=f"retrained on {report['data']['content_hash'][:12]}, gate passed",
    )
    client.set_registered_model_alias(settings.model, "candidate", created.version)
    return str(created.version)  # an int from a local store, a str from a server


def triton_version(report: dict) -> str:
    """The served version a candidate becomes: the ensemble's when the card names one,
    else its classifier's version folder (the model a retrain always renumbers)."""
    versions = report["versions"]
    return str(versions.get("ticket_triage", versions["ticket_classifier"]))


# ---- rollout states (orchestrator) -----------------------------------------------------------
def record_states(settings: RegistrySettings, model: str, states: dict[int, str]) -> None:
    """Mirror one model's rollout: `states` maps each Triton version to its state. Versions
    MLflow does not know yet (registered by hand, the implicit version 1) are created;
    aliases follow the states. An alias whose version the rollout moved on is removed; one on
    a version the rollout does not know yet stays (retrain's newest `candidate`, before it is
    registered for serving). The whole state is written each time, so a record that failed is
    mended by the next."""
    client = make_client(settings)
    ensure_registered_model(client, model)
    known = by_triton_version(client, model)
    holders: dict[str, str] = {}
    rolled_out: set[str] = set()  # MLflow versions whose state the rollout decides
    for triton, state in sorted(states.items()):
        version = known.get(str(triton)) or _create_bare_version(client, model, triton)
        rolled_out.add(str(version.version))
        if version.tags.get(STATE) != state:
            client.set_model_version_tag(model, version.version, STATE, state)
        if state in ALIASED_STATES:  # candidates: the newest one (sorted) holds the alias
            holders[state] = str(version.version)
    current = {k: str(v) for k, v in client.get_registered_model(model).aliases.items()}
    for alias in ALIASED_STATES:
        if alias in holders and current.get(alias) != holders[alias]:
            client.set_registered_model_alias(model, alias, holders[alias])
        elif alias not in holders and current.get(alias) in rolled_out:
            client.delete_registered_model_alias(model, alias)


def by_triton_version(client: "MlflowClient", model: str) -> dict[str, "ModelVersion"]:
    """The model's MLflow versions by their `triton_version` tag (the newest one wins)."""
    if "'" in model:  # the filter's quotes; Triton's model names never hold one
        raise ValueError(f"a model name with a quote cannot be looked up: {model!r}")
    found = client.search_model_versions(f"name = '{model}'")
    ordered = sorted(found, key=lambda v: int(v.version))
    return {v.tags[TRITON_VERSION]: v for v in ordered if TRITON_VERSION in v.tags}


def aliases(settings: RegistrySettings, model: str) -> dict[str, str]:
    """Each alias and the Triton version it points at."""
    client = make_client(settings)
    current = client.get_registered_model(model).aliases
    return {
        alias: client.get_model_version(model, version).tags.get(TRITON_VERSION)
        for alias, version in current.items()
    }


def _create_bare_version(client: "MlflowClient", model: str, triton: int) -> "ModelVersion":
    return client.create_model_version(
        model,
        source=f"triton:/{model}/{triton}",  # no run: registered in the orchestrator only
        tags={TRITON_VERSION: str(triton)},
        description="a Triton version not trained by `export retrain` (or before its record)",
    )


# ---- the client ------------------------------------------------------------------------------
def make_client(settings: RegistrySettings) -> "MlflowClient":
    from mlflow import MlflowClient

    local = _sqlite_file(settings.tracking_uri)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_id(client: "MlflowClient", settings: RegistrySettings) -> str:
    """The experiment's id, created on first use (a local store puts its artifacts under
    `artifact_root`, not in `./mlruns` of whatever folder the command ran in)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(settings.experiment)
    if found is not None:
        return found.experiment_id
    local = _sqlite_file(settings.tracking_uri) is not None
    location = settings.artifact_root.resolve().as_uri() if local else None
    try:
        return client.create_experiment(settings.experiment, artifact_location=location)
    except MlflowException:  # created meanwhile by another process
        return client.get_experiment_by_name(settings.experiment).experiment_id


def ensure_registered_model(client: "MlflowClient", name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description="Served by Triton; versions tagged with triton_version"
            )
        except MlflowException:  # created meanwhile by another process
            client.get_registered_model(name)


def _log_figures(client: "MlflowClient", run_id: str, report: dict) -> None:
    from mlflow.entities import Metric, Param

    stamp = _millis()
    metrics = [Metric(k, v, stamp, 0) for k, v in run_metrics(report).items()]
    by_epoch = report["train"].get("test_accuracy_by_epoch", [])
    metrics += [
        Metric("train.test_accuracy", float(a), stamp, i + 1) for i, a in enumerate(by_epoch)
    ]
    params = [Param(k, v) for k, v in run_params(report).items()]
    client.log_batch(run_id, metrics=metrics, params=params)


def _sqlite_file(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _millis() -> int:
    return int(time.time() * 1000)
