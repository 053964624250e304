"""Publishing a model whose versions are one step of its ensemble (the x-ray classifier, the
credit model): `python -m export xray-publish` and `credit-publish`, as `python -m export
publish` does for triage's three steps (export/publish.py).

A candidate that passed its gate is copied, with its drift reference and its card, into the
serving repository as `<step>/<v>/`, and the served configs are written:

- `<step>/configs/served.pbtxt`: the committed config loading every published version;
- `<ensemble>/configs/served.pbtxt`: the committed ensemble with the step pinned to version 1,
  so that it keeps answering as version 1;
- `<ensemble>_v<v>/config.pbtxt`: the same ensemble named for version v, pinned to v.

Registering the version (POST /v1/model/versions) has every Triton load them; which version
answers whom is the orchestrator's routing. The ensemble's other steps are shared by every
version. The retrain commands write candidates as `<candidates>/<step>/<v>/` (write_candidate).
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from contracts.versions import BASE_VERSION, step_file, step_reference_file, versioned_model_name
from export.publish import (
    CARD,
    NotPublishable,
    newest_card,
    passed_card,
    pinned,
    read_config,
    serve_versions,
    write_ensemble,
    write_served,
)
from export.repository import copy_into


@dataclass(frozen=True)
class OneStepModel:
    step: str  # the model whose versions are published, e.g. xray_classifier
    ensemble: str  # the ensemble that runs it, e.g. xray_diagnosis
    noun: str  # how the commands call it: "published <noun> version <v>"
    retrain: str  # the command that writes its candidates, e.g. xray-retrain

    def file(self, version: int) -> str:
        return step_file(self.step, version)

    def reference(self, version: int) -> str:
        return step_reference_file(self.step, version)

    def model_name(self, version: int) -> str:
        return versioned_model_name(self.ensemble, version)


@dataclass(frozen=True)
class PublishedVersion:
    version: int
    model: str  # the ensemble that serves it
    served: list[int]  # every published version


def publish_step(spec: OneStepModel, card_path: Path, repository: Path) -> PublishedVersion:
    """Copy the candidate whose model card is `card_path` into `repository` and rewrite the
    served configs; publishing the same candidate twice changes nothing."""
    card = passed_card(card_path)
    version = int(card["version"])
    folder = card_path.parent  # <candidates>/<step>/<v>/
    files = {
        spec.file(version): folder / "model.onnx",
        spec.reference(version): folder / "reference.json",
        f"{spec.step}/{version}/{CARD}": card_path,
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise NotPublishable(f"the candidate's files are missing: {', '.join(missing)}")
    _refuse_another_model_at(spec, repository, version, card_path)
    copy_into(repository, files)
    served = served_step_versions(spec, repository)
    write_step_configs(spec, repository, served)
    return PublishedVersion(version, spec.model_name(version), served)


def newest_step_card(spec: OneStepModel, candidates: Path) -> Path:
    """The model card of the highest-numbered candidate of `spec` in `candidates`."""
    return newest_card(candidates, spec.step, spec.retrain)


def served_step_versions(spec: OneStepModel, repository: Path) -> list[int]:
    """Every version the repository holds: the base one and each published one."""
    served = []
    for folder in (repository / spec.step).iterdir():
        if not (folder.name.isdigit() and (folder / "model.onnx").is_file()):
            continue
        if int(folder.name) == BASE_VERSION or (folder / CARD).is_file():
            served.append(int(folder.name))
    return sorted(served)


def write_step_configs(spec: OneStepModel, repository: Path, served: list[int]) -> None:
    serve_versions(repository / spec.step, served)
    ensemble = read_config(repository / spec.ensemble)
    for version in served:
        config = pinned(ensemble, spec.model_name(version), {spec.step: version})
        if version == BASE_VERSION:
            write_served(repository / spec.ensemble, config)
        else:
            write_ensemble(repository, config)


def unpublish_step(spec: OneStepModel, repository: Path) -> None:
    """Back to the repository as built: no served configs, no per-version ensembles (the
    published files stay, unused). For tests and a clean build."""
    for model in (spec.step, spec.ensemble):
        shutil.rmtree(repository / model / "configs", ignore_errors=True)
    for folder in repository.glob(f"{spec.ensemble}_v*"):
        shutil.rmtree(folder, ignore_errors=True)


def next_version(spec: OneStepModel, repository: Path, candidates: Path) -> int:
    """One above every version served in `repository` or written in `candidates`."""
    taken = [
        int(folder.name)
        for root in (repository / spec.step, candidates / spec.step)
        if root.is_dir()
        for folder in root.iterdir()
        if folder.name.isdigit()
    ]
    return max(taken, default=BASE_VERSION) + 1


def write_candidate(folder: Path, model: Path, reference: Path, card: dict) -> Path:
    """`<candidates>/<step>/<v>/`: the model, its drift reference and its card; the card's
    path is returned (what the publish command reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "model.onnx")
    shutil.copyfile(reference, folder / "reference.json")
    card_path = folder / CARD
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card_path


def _refuse_another_model_at(
    spec: OneStepModel, repository: Path, version: int, card: Path
) -> None:
    """A version number already holding another model must not be overwritten: that would
    change a served version under its callers."""
    if version == BASE_VERSION:
        raise NotPublishable(f"version {version} is the base model's")
    served, card_there = (
        repository / spec.file(version),
        repository / spec.step / str(version) / CARD,
    )
    if served.is_file() and (
        not card_there.is_file()
        or card_there.read_bytes() != card.read_bytes()
        or served.read_bytes() != (card.parent / "model.onnx").read_bytes()
    ):
        raise NotPublishable(
            f"{spec.step} version {version} already holds another model in {repository}; "
            f"{spec.retrain} numbers candidates after every served version: retrain against "
            "this repository (--production-repository)"
        )
