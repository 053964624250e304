"""`python -m export xray-publish` and `credit-publish`: a passed candidate lands beside
production with the configs that pin every served version; nothing else is accepted. Files
only (Triton reading them is tests/orchestrator/test_xray_loop.py's and test_credit_loop.py's)."""

import json
from pathlib import Path

import pytest

from contracts.versions import published_ensembles
from export.__main__ import main
from export.credit.publish import CREDIT
from export.publish import NotPublishable
from export.repository import ensure_configs
from export.step_publish import (
    OneStepModel,
    next_version,
    publish_step,
    served_step_versions,
    unpublish_step,
)
from export.xray.publish import XRAY
from orchestrator.triton.model_config import read_config

SPECS = pytest.mark.parametrize("spec", [XRAY, CREDIT], ids=lambda s: s.noun)


def _base(spec: OneStepModel, repository: Path) -> Path:
    ensure_configs(repository)
    (repository / spec.file(1)).parent.mkdir(parents=True, exist_ok=True)
    (repository / spec.file(1)).write_bytes(b"base")
    return repository


def _candidate(
    spec: OneStepModel, candidates: Path, version: int, status="passed", model=b"candidate"
) -> Path:
    folder = candidates / spec.step / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "reference.json").write_text("{}")
    card = folder / "model_card.json"
    card.write_text(json.dumps({
        "model": spec.step,
        "version": version,
        "status": status,
        "gate": {"passed": status == "passed", "reasons": []},
    }))  # fmt: skip
    return card


def _step_version(spec: OneStepModel, ensemble) -> int:
    (step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == spec.step]
    return step.model_version


@SPECS
def test_a_passed_candidate_is_served_beside_production_with_pinned_ensembles(spec, tmp_path):
    repository = _base(spec, tmp_path / "repo")
    published = publish_step(spec, _candidate(spec, tmp_path / "cand", 2), repository)

    v2 = f"{spec.ensemble}_v2"
    assert (published.version, published.model, published.served) == (2, v2, [1, 2])
    assert (repository / spec.file(2)).read_bytes() == b"candidate"
    assert (repository / spec.reference(2)).is_file()
    step = read_config(repository / spec.step)  # the served config
    assert list(step.version_policy.specific.versions) == [1, 2]
    base = read_config(repository / spec.ensemble)
    assert base.name == spec.ensemble and _step_version(spec, base) == 1  # not "the newest"
    versioned = read_config(repository / v2)
    assert versioned.name == v2 and _step_version(spec, versioned) == 2
    assert (repository / v2 / "1").is_dir()  # an ensemble's version folder
    assert published_ensembles(repository, spec.ensemble) == [v2]

    again = publish_step(spec, _candidate(spec, tmp_path / "cand", 2), repository)  # a no-op
    assert again.served == [1, 2]
    publish_step(spec, _candidate(spec, tmp_path / "cand", 3), repository)
    assert served_step_versions(spec, repository) == [1, 2, 3]
    assert next_version(spec, repository, tmp_path / "cand") == 4
    unpublish_step(spec, repository)
    assert published_ensembles(repository, spec.ensemble) == []
    assert not (repository / spec.step / "configs").exists()


@SPECS
def test_a_refused_candidate_the_base_version_or_a_taken_version_is_not_published(spec, tmp_path):
    repository = _base(spec, tmp_path / "repo")
    with pytest.raises(NotPublishable, match="not a candidate that passed"):
        publish_step(spec, _candidate(spec, tmp_path / "cand", 2, status="refused"), repository)
    with pytest.raises(NotPublishable, match="base model"):
        publish_step(spec, _candidate(spec, tmp_path / "cand", 1), repository)
    publish_step(spec, _candidate(spec, tmp_path / "cand", 2), repository)
    other = _candidate(spec, tmp_path / "other", 2, model=b"another model")
    with pytest.raises(NotPublishable, match="already holds another model"):
        publish_step(spec, other, repository)
    assert (repository / spec.file(2)).read_bytes() == b"candidate"


@SPECS
def test_the_command_publishes_the_newest_candidate_and_says_what_is_next(
    spec, tmp_path, monkeypatch, capsys
):
    repository = _base(spec, tmp_path / "repo")
    command = f"{spec.noun}-publish"
    monkeypatch.setenv("EXPORT_CANDIDATES_DIR", str(tmp_path / "cand"))
    _candidate(spec, tmp_path / "cand", 2)
    _candidate(spec, tmp_path / "cand", 3)
    assert main([command, "--repository", str(repository)]) == 0
    printed = capsys.readouterr().out
    assert f"published {spec.noun} version 3 as {spec.ensemble}_v3" in printed
    assert f'"model": "{spec.ensemble}", "version": 3' in printed
    (tmp_path / "cand" / spec.step / "3" / "reference.json").unlink()
    (tmp_path / "cand" / spec.step / "4").mkdir()
    missing = str(tmp_path / "missing.json")
    assert main([command, missing, "--repository", str(repository)]) == 2
    assert "no model card" in capsys.readouterr().err
