"""Which triage version is production, and its files: what `export retrain` gates against.

The version comes from the orchestrator's `model_versions` table (read with SQLAlchemy Core,
like the corrections), where canary, promote and rollback record it; a database without a
production row means the base version (1), served before versions were tracked. The files
are that version's in the serving repository (export/publish.py's layout).
"""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Integer, String, column, create_engine, select, table
from sqlalchemy.exc import SQLAlchemyError

from contracts.models import BASE_TRIAGE_VERSION, INTENT_MODEL, TRIAGE_ENSEMBLE
from contracts.storage import engine_url
from export.publish import CLASSIFIER, ENCODER, served_versions

if TYPE_CHECKING:
    from export.step_publish import OneStepModel

MODEL_VERSIONS = table(
    "model_versions", column("model", String), column("version", Integer), column("state", String)
)


class ProductionMissing(FileNotFoundError):
    pass


def production_version(database_url: str, model: str = TRIAGE_ENSEMBLE) -> int:
    """The production version of `model` (triage, or xray_diagnosis) the orchestrator records;
    the base one when it records none or its database cannot be read (a first retrain, before
    any `make up`)."""
    if (
        database_url.startswith("sqlite:///")
        and not Path(database_url.removeprefix("sqlite:///")).is_file()
    ):
        return BASE_TRIAGE_VERSION
    query = select(MODEL_VERSIONS.c.version).where(
        MODEL_VERSIONS.c.model == model, MODEL_VERSIONS.c.state == "production"
    )
    engine = create_engine(engine_url(database_url))
    try:
        with engine.connect() as connection:
            found = connection.execute(query).scalar()
    except SQLAlchemyError:
        return BASE_TRIAGE_VERSION  # not migrated that far yet: nothing was ever promoted
    finally:
        engine.dispose()
    return found if found is not None else BASE_TRIAGE_VERSION


def production_files(repository: Path, version: int) -> dict[str, tuple[str, Path]]:
    """(version, model.onnx) of the encoder, the classifier and the fused file (what serves:
    ticket_intent, numbered as the classifier) of triage `version`."""
    served = served_versions(repository) if (repository / CLASSIFIER).is_dir() else {}
    if version not in served:
        raise ProductionMissing(
            f"{repository} holds no triage version {version} (it has {sorted(served) or 'none'}): "
            "build production first (`python -m export build`, or `make up`)"
        )
    files = {
        ENCODER: (str(served[version]), repository / ENCODER / str(served[version]) / "model.onnx"),
        CLASSIFIER: (str(version), repository / CLASSIFIER / str(version) / "model.onnx"),
        INTENT_MODEL: (str(version), repository / INTENT_MODEL / str(version) / "model.onnx"),
    }
    for model, (number, path) in files.items():
        if not path.is_file():
            raise ProductionMissing(f"{model} version {number} has no model.onnx at {path}")
    return files


def production_step_file(
    spec: "OneStepModel", repository: Path, database_url: str, version: int | None, build: str
) -> tuple[int, Path]:
    """(the production version of a one-step model, its served file in `repository`): the
    version asked, else the orchestrator's production. ProductionMissing names `build`, the
    command that makes version 1, when the file is not there."""
    version = version or production_version(database_url, spec.ensemble)
    file = repository / spec.file(version)
    if not file.is_file():
        raise ProductionMissing(
            f"production {spec.noun} version {version} is not at {file}: build it first "
            f"(`python -m export {build}`, or `make up`)"
        )
    return version, file
