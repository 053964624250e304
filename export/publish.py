"""`python -m export publish`: make a candidate that passed the gate servable beside production.

Publishing serves nothing new by itself: it copies the candidate's INT8 encoder, its
classifier and the two fused (`ticket_intent`, what the ensemble runs) into the serving
repository under their version numbers, and writes the configs that let Triton hold every
published version at once (contracts/models.py explains the layout):

- `ticket_encoder/configs/served.pbtxt`, `ticket_classifier/configs/served.pbtxt` and
  `ticket_intent/configs/served.pbtxt`: the committed config with `version_policy: specific`
  listing every published version;
- `ticket_triage/configs/served.pbtxt`: the committed ensemble with its steps pinned to the
  base versions, so that it keeps answering as triage version 1;
- `ticket_triage_v<v>/config.pbtxt`: the same ensemble named for version v, its steps pinned
  to the candidate's models.

Triton reads these at the next load of those models (`POST /v1/model/versions` asks every
Triton to), and a Triton started later reads them at start, so every replica serves the same
versions. Which version answers whom is the orchestrator's routing (canary, promote,
rollback), not Triton's. The fp32 encoder stays with the candidate: only INT8 is served.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import text_format

from contracts.models import (
    BASE_TRIAGE_VERSION,
    ENCODER_VERSIONS,
    INTENT_MODEL,
    TRIAGE_ENSEMBLE,
    triage_model_name,
)
from contracts.versions import SERVED_CONFIG
from export.repository import copy_into, write_text_whole

CLASSIFIER, ENCODER = "ticket_classifier", "ticket_encoder"
CARD = "model_card.json"
HEADER = "# Written by `python -m export publish` from config.pbtxt; do not edit by hand.\n"


class NotPublishable(ValueError):
    """The card is not a passed candidate's, or its files are missing."""


@dataclass(frozen=True)
class Published:
    version: int  # the triage version (= the classifier's)
    encoder_version: int  # the INT8 encoder it reads
    model: str  # the ensemble that serves it
    served: dict[int, int]  # every published triage version → its encoder version


def publish(card_path: Path, repository: Path) -> Published:
    """Copy the candidate whose model card is `card_path` into `repository` and rewrite the
    served configs; publishing the same candidate twice changes nothing."""
    card = passed_card(card_path)
    version = int(card["versions"][CLASSIFIER])
    encoder = int(card["versions"][ENCODER]["int8"])
    candidates = card_path.parents[2]  # <candidates>/ticket_classifier/<v>/model_card.json
    files = {
        f"{CLASSIFIER}/{version}/model.onnx": candidates / CLASSIFIER / str(version) / "model.onnx",
        f"{INTENT_MODEL}/{version}/model.onnx": candidates
        / INTENT_MODEL
        / str(version)
        / "model.onnx",
        f"{ENCODER}/{encoder}/model.onnx": candidates / ENCODER / str(encoder) / "model.onnx",
        f"{CLASSIFIER}/{version}/{CARD}": card_path,
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise NotPublishable(f"the candidate's files are missing: {', '.join(missing)}")
    _refuse_other_models_at(repository, version, encoder, card_path)
    copy_into(repository, files)
    served = served_versions(repository)
    write_served_configs(repository, served)
    return Published(version, encoder, triage_model_name(version), served)


def newest_card(candidates: Path, model: str = CLASSIFIER, retrain: str = "retrain") -> Path:
    """The model card of the highest-numbered candidate of `model` in `candidates`; the
    `python -m export <retrain>` command makes them."""
    cards = [c for c in (candidates / model).glob(f"*/{CARD}") if c.parent.name.isdigit()]
    if not cards:
        raise FileNotFoundError(
            f"no {model} candidate in {candidates}: run `python -m export {retrain}` first"
        )
    return max(cards, key=lambda c: int(c.parent.name))


def served_versions(repository: Path) -> dict[int, int]:
    """Every triage version the repository holds → the INT8 encoder version it reads."""
    served = {}
    for folder in sorted((repository / CLASSIFIER).iterdir()):
        if not (folder.name.isdigit() and (folder / "model.onnx").is_file()):
            continue
        version = int(folder.name)
        if version == BASE_TRIAGE_VERSION:
            served[version] = int(ENCODER_VERSIONS["int8"])
        elif (folder / CARD).is_file():
            card = json.loads((folder / CARD).read_text())
            served[version] = int(card["versions"][ENCODER]["int8"])
    return dict(sorted(served.items()))


def write_served_configs(repository: Path, served: dict[int, int]) -> None:
    serve_versions(repository / ENCODER, served.values())
    serve_versions(repository / CLASSIFIER, served)
    serve_versions(repository / INTENT_MODEL, served)
    ensemble = read_config(repository / TRIAGE_ENSEMBLE)
    for version, encoder in served.items():
        pins = {ENCODER: encoder, CLASSIFIER: version, INTENT_MODEL: version}
        config = pinned(ensemble, triage_model_name(version), pins)
        if version == BASE_TRIAGE_VERSION:
            write_served(repository / TRIAGE_ENSEMBLE, config)
        else:
            write_ensemble(repository, config)


def unpublish(repository: Path) -> None:
    """Back to the repository as built: no served configs, no per-version ensembles (the
    published model files stay, unused). For tests and a clean `export build`."""
    for model in (ENCODER, CLASSIFIER, INTENT_MODEL, TRIAGE_ENSEMBLE):
        shutil.rmtree(repository / model / "configs", ignore_errors=True)
    for folder in repository.glob(f"{TRIAGE_ENSEMBLE}_v*"):
        shutil.rmtree(folder, ignore_errors=True)


def passed_card(card_path: Path) -> dict:
    if not card_path.is_file():
        raise NotPublishable(f"no model card at {card_path}")
    card = json.loads(card_path.read_text())
    if card.get("status") != "passed" or not card.get("gate", {}).get("passed"):
        raise NotPublishable(f"{card_path} is not a candidate that passed the gate")
    return card


def _refuse_other_models_at(repository: Path, version: int, encoder: int, card: Path) -> None:
    """A version number already holding another model must not be overwritten: that would
    change a served version under its callers."""
    existing = repository / CLASSIFIER / str(version) / CARD
    if (repository / CLASSIFIER / str(version) / "model.onnx").is_file() and (
        not existing.is_file() or existing.read_bytes() != card.read_bytes()
    ):
        raise NotPublishable(
            f"{CLASSIFIER} version {version} already holds another model in {repository}; "
            "retrain numbers candidates after every served version: retrain against this "
            "repository (--production-repository)"
        )
    if version == BASE_TRIAGE_VERSION or encoder == int(ENCODER_VERSIONS["int8"]):
        raise NotPublishable(f"version {version} / encoder {encoder} is the base model's")


def serve_versions(model_folder: Path, versions) -> None:
    """The model's served config: its committed one loading exactly `versions`."""
    write_served(model_folder, with_versions(read_config(model_folder), versions))


def read_config(folder: Path) -> mc.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())


def with_versions(config: mc.ModelConfig, versions) -> mc.ModelConfig:
    config = copy_config(config)
    config.version_policy.Clear()
    config.version_policy.specific.versions.extend(sorted(set(versions)))
    return config


def pinned(ensemble: mc.ModelConfig, name: str, pins: dict[str, int]) -> mc.ModelConfig:
    """`ensemble` named `name`, the steps running a model of `pins` pinned to its version."""
    config = copy_config(ensemble)
    config.name = name
    for step in config.ensemble_scheduling.step:
        step.model_version = pins.get(step.model_name, step.model_version)
    return config


def write_ensemble(repository: Path, config: mc.ModelConfig) -> None:
    """A per-version ensemble's own model folder, named as its config."""
    folder = repository / config.name
    (folder / "1").mkdir(parents=True, exist_ok=True)  # an ensemble's empty version
    write_text_whole(folder / "config.pbtxt", config_text(config))


def copy_config(config: mc.ModelConfig) -> mc.ModelConfig:
    copied = mc.ModelConfig()
    copied.CopyFrom(config)
    return copied


def config_text(config: mc.ModelConfig) -> str:
    return HEADER + text_format.MessageToString(config)


def write_served(model_folder: Path, config: mc.ModelConfig) -> None:
    write_text_whole(model_folder / "configs" / f"{SERVED_CONFIG}.pbtxt", config_text(config))
