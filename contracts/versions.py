"""How served model versions are named (triage and the x-ray share the layout).

Version 1 of a model is what its build writes, served by its ensemble. Ensemble versions share
one config.pbtxt, so each later version gets an ensemble of its own, `<ensemble>_v<version>`,
whose steps name their models' versions (the publish commands write it). Published models read
`configs/served.pbtxt` (Triton's --model-config-name), which lists the versions to load;
config.pbtxt stays as built.
"""

from pathlib import Path

BASE_VERSION = 1
SERVED_CONFIG = "served"


def versioned_model_name(ensemble: str, version: int) -> str:
    """The ensemble that serves `version` of the model `ensemble` serves."""
    return ensemble if version == BASE_VERSION else f"{ensemble}_v{version}"


def published_ensembles(repository: Path, ensemble: str) -> list[str]:
    """The per-version ensembles of `ensemble` published into `repository`, by version."""
    prefix = f"{ensemble}_v"
    found = [
        p.name
        for p in repository.glob(f"{prefix}*")
        if p.name.removeprefix(prefix).isdigit() and (p / "config.pbtxt").is_file()
    ]
    return sorted(found, key=lambda name: int(name.removeprefix(prefix)))


def step_file(step: str, version: int) -> str:
    """The served ONNX file of `version` of a one-step model (the x-ray classifier, the credit
    model), relative to the repository."""
    return f"{step}/{version}/model.onnx"


def step_reference_file(step: str, version: int) -> str:
    """The drift reference written beside `version` of a one-step model."""
    return f"{step}/{version}/reference.json"
