"""Writing the exported files into the Triton model repository, next to the committed configs."""

import os
import shutil
from pathlib import Path

from contracts.models import CLASSIFIER_FILE, ENCODER_FILES, INTENT_FILE, TOKENIZER_FILE
from export.packaged import encoder_dir
from export.settings import PROJECT_ROOT

COMMITTED_REPOSITORY = PROJECT_ROOT / "model_repository"


# What a build or `export publish` adds beside the committed configs and code: exported files,
# served configs, pinned per-version ensembles and model cards
_NOT_COMMITTED = shutil.ignore_patterns(
    "*.onnx",
    "*.plan",
    "tokenizer.json",
    "__pycache__",
    "configs",
    "*_v[0-9]*",
    "model_card.json",
)


def _not_committed(folder: str, names: list[str]) -> set[str]:
    """Also every version folder past 1: the committed code lives in `1/`, later versions are
    published ones (Triton would try to serve an emptied copy of one)."""
    later = {name for name in names if name.isdigit() and int(name) > 1}
    return set(_NOT_COMMITTED(folder, names)) | later


def ensure_configs(repository: Path) -> None:
    """Give a repository outside the project (tests, variants) the committed configs and code,
    not what was built or published into the project's own repository."""
    if repository.resolve() == COMMITTED_REPOSITORY.resolve():
        return
    shutil.copytree(COMMITTED_REPOSITORY, repository, dirs_exist_ok=True, ignore=_not_committed)


def write_models(
    repository: Path, *, encoder_fp32: Path, encoder_int8: Path, classifier: Path, intent: Path
) -> list[Path]:
    """Install the exported files as numbered versions; each file lands whole or not at all."""
    ensure_configs(repository)
    sources = {
        TOKENIZER_FILE: encoder_dir() / "tokenizer.json",
        ENCODER_FILES["fp32"]: encoder_fp32,
        ENCODER_FILES["int8"]: encoder_int8,
        CLASSIFIER_FILE: classifier,
        INTENT_FILE: intent,
    }
    return copy_into(repository, sources)


def copy_into(root: Path, sources: dict[str, Path]) -> list[Path]:
    """Copy each source to `root / relative`, each file whole or not at all (a reader never
    sees half a model); return the targets."""
    written = []
    for relative, source in sources.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        written.append(target)
    return written


def write_text_whole(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all, as copy_into copies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
