"""Writing the exported files into the Triton model repository, next to the committed configs."""

import os
import shutil
from pathlib import Path

from export.model import encoder_dir
from export.settings import PROJECT_ROOT

COMMITTED_REPOSITORY = PROJECT_ROOT / "model_repository"
ENCODER_VERSIONS = {"fp32": "1", "int8": "2"}

# Every file the ensemble needs that the export step generates (relative to the repository).
GENERATED_FILES = (
    "ticket_tokenizer/1/tokenizer.json",
    f"ticket_encoder/{ENCODER_VERSIONS['fp32']}/model.onnx",
    f"ticket_encoder/{ENCODER_VERSIONS['int8']}/model.onnx",
    "ticket_classifier/1/model.onnx",
)


def missing_files(repository: Path) -> list[str]:
    """Generated files the repository still lacks (empty when it is built)."""
    return [name for name in GENERATED_FILES if not (repository / name).is_file()]


def ensure_configs(repository: Path) -> None:
    """Give a repository outside the project (tests, variants) the committed configs and code."""
    if repository.resolve() == COMMITTED_REPOSITORY.resolve():
        return
    shutil.copytree(
        COMMITTED_REPOSITORY,
        repository,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("*.onnx", "*.plan", "tokenizer.json", "__pycache__"),
    )


def write_models(
    repository: Path, *, encoder_fp32: Path, encoder_int8: Path, classifier: Path
) -> list[Path]:
    """Install the exported files as numbered versions; each file lands whole or not at all."""
    ensure_configs(repository)
    sources = {
        GENERATED_FILES[0]: encoder_dir() / "tokenizer.json",
        GENERATED_FILES[1]: encoder_fp32,
        GENERATED_FILES[2]: encoder_int8,
        GENERATED_FILES[3]: classifier,
    }
    written = []
    for relative, source in sources.items():
        target = repository / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        written.append(target)
    return written
