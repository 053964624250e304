"""`python -m export xray-publish`: a passed x-ray candidate lands beside production with the
configs that pin every served version; nothing else is accepted. Files only (Triton reading
them is tests/orchestrator/test_xray_loop.py's)."""

import json
from pathlib import Path

import pytest

from contracts.versions import published_ensembles
from contracts.xray import XRAY_CLASSIFIER, XRAY_ENSEMBLE, xray_file
from export.__main__ import main
from export.publish import NotPublishable
from export.repository import ensure_configs
from export.xray.publish import publish_xray, served_xray_versions, unpublish_xray
from export.xray.retrain import next_version
from orchestrator.triton.model_config import read_config


def _base(repository: Path) -> Path:
    ensure_configs(repository)
    (repository / xray_file(1)).parent.mkdir(parents=True, exist_ok=True)
    (repository / xray_file(1)).write_bytes(b"base")
    return repository


def _candidate(candidates: Path, version: int, status="passed", model=b"candidate") -> Path:
    folder = candidates / XRAY_CLASSIFIER / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "reference.json").write_text("{}")
    card = folder / "model_card.json"
    card.write_text(json.dumps({
        "model": XRAY_CLASSIFIER,
        "version": version,
        "status": status,
        "gate": {"passed": status == "passed", "reasons": []},
    }))  # fmt: skip
    return card


def _classifier_version(ensemble) -> int:
    (step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == XRAY_CLASSIFIER]
    return step.model_version


def test_a_passed_candidate_is_served_beside_production_with_pinned_ensembles(tmp_path):
    repository = _base(tmp_path / "repo")
    published = publish_xray(_candidate(tmp_path / "cand", 2), repository)

    assert (published.version, published.model, published.served) == (
        2,
        "xray_diagnosis_v2",
        [1, 2],
    )
    assert (repository / xray_file(2)).read_bytes() == b"candidate"
    assert (repository / XRAY_CLASSIFIER / "2" / "reference.json").is_file()
    classifier = read_config(repository / XRAY_CLASSIFIER)  # the served config
    assert list(classifier.version_policy.specific.versions) == [1, 2]
    base = read_config(repository / XRAY_ENSEMBLE)
    assert base.name == XRAY_ENSEMBLE and _classifier_version(base) == 1  # not "the newest"
    versioned = read_config(repository / "xray_diagnosis_v2")
    assert versioned.name == "xray_diagnosis_v2" and _classifier_version(versioned) == 2
    assert (repository / "xray_diagnosis_v2" / "1").is_dir()  # an ensemble's version folder
    assert published_ensembles(repository, XRAY_ENSEMBLE) == ["xray_diagnosis_v2"]

    again = publish_xray(_candidate(tmp_path / "cand", 2), repository)  # the same card: a no-op
    assert again.served == [1, 2]
    publish_xray(_candidate(tmp_path / "cand", 3), repository)
    assert served_xray_versions(repository) == [1, 2, 3]
    assert next_version(repository, tmp_path / "cand") == 4
    unpublish_xray(repository)
    assert published_ensembles(repository, XRAY_ENSEMBLE) == []
    assert not (repository / XRAY_CLASSIFIER / "configs").exists()


def test_a_refused_candidate_the_base_version_or_a_taken_version_is_not_published(tmp_path):
    repository = _base(tmp_path / "repo")
    with pytest.raises(NotPublishable, match="not a candidate that passed"):
        publish_xray(_candidate(tmp_path / "cand", 2, status="refused"), repository)
    with pytest.raises(NotPublishable, match="base model"):
        publish_xray(_candidate(tmp_path / "cand", 1), repository)
    publish_xray(_candidate(tmp_path / "cand", 2), repository)
    other = _candidate(tmp_path / "other", 2, model=b"another model")
    with pytest.raises(NotPublishable, match="already holds another model"):
        publish_xray(other, repository)
    assert (repository / xray_file(2)).read_bytes() == b"candidate"


def test_the_command_publishes_the_newest_candidate_and_says_what_is_next(
    tmp_path, monkeypatch, capsys
):
    repository = _base(tmp_path / "repo")
    monkeypatch.setenv("EXPORT_CANDIDATES_DIR", str(tmp_path / "cand"))
    _candidate(tmp_path / "cand", 2)
    _candidate(tmp_path / "cand", 3)
    assert main(["xray-publish", "--repository", str(repository)]) == 0
    printed = capsys.readouterr().out
    assert "published xray version 3 as xray_diagnosis_v3" in printed
    assert '"model": "xray_diagnosis", "version": 3' in printed
    (tmp_path / "cand" / XRAY_CLASSIFIER / "3" / "reference.json").unlink()
    (tmp_path / "cand" / XRAY_CLASSIFIER / "4").mkdir()
    assert (
        main(["xray-publish", str(tmp_path / "missing.json"), "--repository", str(repository)]) == 2
    )
    assert "no model card" in capsys.readouterr().err
