"""`python -m export xray-publish`: make an x-ray candidate that passed its gate servable
beside production, as `python -m export publish` does for triage (export/publish.py).

It copies the candidate's served file, its drift reference and its card into the serving
repository as `xray_classifier/<v>/`, and writes:

- `xray_classifier/configs/served.pbtxt`: the committed config loading every published version;
- `xray_diagnosis/configs/served.pbtxt`: the committed ensemble with the classifier pinned to
  version 1, so that it keeps answering as x-ray version 1;
- `xray_diagnosis_v<v>/config.pbtxt`: the same ensemble named for version v, pinned to v.

Registering the version (POST /v1/model/versions) has every Triton load them; which version
answers whom is the orchestrator's routing. xray_preprocess is shared by every version.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from contracts.xray import (
    BASE_XRAY_VERSION,
    XRAY_CLASSIFIER,
    XRAY_ENSEMBLE,
    xray_file,
    xray_model_name,
    xray_reference_file,
)
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
class PublishedXray:
    version: int
    model: str  # the ensemble that serves it
    served: list[int]  # every published x-ray version


def publish_xray(card_path: Path, repository: Path) -> PublishedXray:
    """Copy the candidate whose model card is `card_path` into `repository` and rewrite the
    served configs; publishing the same candidate twice changes nothing."""
    card = passed_card(card_path)
    version = int(card["version"])
    folder = card_path.parent  # <candidates>/xray_classifier/<v>/
    files = {
        xray_file(version): folder / "model.onnx",
        xray_reference_file(version): folder / "reference.json",
        f"{XRAY_CLASSIFIER}/{version}/{CARD}": card_path,
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise NotPublishable(f"the candidate's files are missing: {', '.join(missing)}")
    _refuse_another_model_at(repository, version, card_path)
    copy_into(repository, files)
    served = served_xray_versions(repository)
    write_xray_configs(repository, served)
    return PublishedXray(version, xray_model_name(version), served)


def newest_xray_card(candidates: Path) -> Path:
    """The model card of the highest-numbered x-ray candidate in `candidates`."""
    return newest_card(candidates, XRAY_CLASSIFIER, "xray-retrain")


def served_xray_versions(repository: Path) -> list[int]:
    """Every x-ray version the repository holds: the base one and each published one."""
    served = []
    for folder in (repository / XRAY_CLASSIFIER).iterdir():
        if not (folder.name.isdigit() and (folder / "model.onnx").is_file()):
            continue
        if int(folder.name) == BASE_XRAY_VERSION or (folder / CARD).is_file():
            served.append(int(folder.name))
    return sorted(served)


def write_xray_configs(repository: Path, served: list[int]) -> None:
    serve_versions(repository / XRAY_CLASSIFIER, served)
    ensemble = read_config(repository / XRAY_ENSEMBLE)
    for version in served:
        config = pinned(ensemble, xray_model_name(version), {XRAY_CLASSIFIER: version})
        if version == BASE_XRAY_VERSION:
            write_served(repository / XRAY_ENSEMBLE, config)
        else:
            write_ensemble(repository, config)


def unpublish_xray(repository: Path) -> None:
    """Back to the repository as built: no served configs, no per-version ensembles (the
    published files stay, unused). For tests and a clean `export xray`."""
    for model in (XRAY_CLASSIFIER, XRAY_ENSEMBLE):
        shutil.rmtree(repository / model / "configs", ignore_errors=True)
    for folder in repository.glob(f"{XRAY_ENSEMBLE}_v*"):
        shutil.rmtree(folder, ignore_errors=True)


def _refuse_another_model_at(repository: Path, version: int, card: Path) -> None:
    """A version number already holding another model must not be overwritten: that would
    change a served version under its callers."""
    if version == BASE_XRAY_VERSION:
        raise NotPublishable(f"version {version} is the base model's")
    served, card_there = (
        repository / xray_file(version),
        repository / XRAY_CLASSIFIER / str(version) / CARD,
    )
    if served.is_file() and (
        not card_there.is_file()
        or card_there.read_bytes() != card.read_bytes()
        or served.read_bytes() != (card.parent / "model.onnx").read_bytes()
    ):
        raise NotPublishable(
            f"{XRAY_CLASSIFIER} version {version} already holds another model in {repository}; "
            "xray-retrain numbers candidates after every served version: retrain against this "
            "repository (--production-repository)"
        )
