"""`python -m export publish`: a passed candidate lands beside production with the configs that
pin every served version; nothing else is accepted. Files only (Triton reading them is
tests/orchestrator/test_mlops_loop.py's)."""

import json
from pathlib import Path

import pytest

from contracts.models import TRIAGE_ENSEMBLE, triage_model_name
from contracts.versions import published_ensembles
from export.__main__ import main
from export.publish import NotPublishable, newest_card, publish, served_versions, unpublish
from export.repository import ensure_configs
from orchestrator.triton.model_config import read_config


def _base(repository: Path) -> Path:
    ensure_configs(repository)
    for relative in (
        "ticket_encoder/1",
        "ticket_encoder/2",
        "ticket_classifier/1",
        "ticket_intent/1",
    ):
        (repository / relative).mkdir(parents=True, exist_ok=True)
        (repository / relative / "model.onnx").write_bytes(b"base " + relative.encode())
    return repository


def _candidate(candidates: Path, classifier: int, encoder: int, status="passed") -> Path:
    models = (
        f"ticket_classifier/{classifier}",
        f"ticket_encoder/{encoder}",
        f"ticket_intent/{classifier}",
    )
    for relative in models:
        (candidates / relative).mkdir(parents=True, exist_ok=True)
        (candidates / relative / "model.onnx").write_bytes(b"candidate " + relative.encode())
    card = candidates / f"ticket_classifier/{classifier}/model_card.json"
    card.write_text(json.dumps({
        "status": status,
        "gate": {"passed": status == "passed", "reasons": []},
        "versions": {
            "ticket_classifier": str(classifier),
            "ticket_encoder": {"fp32": str(encoder - 1), "int8": str(encoder)},
        },
    }))  # fmt: skip
    return card


def _steps(config) -> dict[str, int]:
    return {s.model_name: s.model_version for s in config.ensemble_scheduling.step}


def test_a_passed_candidate_is_served_beside_production_with_pinned_ensembles(tmp_path):
    repository = _base(tmp_path / "repo")
    published = publish(_candidate(tmp_path / "cand", 2, 4), repository)

    assert (published.version, published.encoder_version) == (2, 4)
    assert published.model == "ticket_triage_v2" == triage_model_name(2)
    assert published.served == served_versions(repository) == {1: 2, 2: 4}
    assert (repository / "ticket_encoder/4/model.onnx").read_bytes().startswith(b"candidate")
    assert not (repository / "ticket_encoder/3").exists()  # fp32 is not served
    encoder = read_config(repository / "ticket_encoder")
    assert list(encoder.version_policy.specific.versions) == [2, 4]
    classifier = read_config(repository / "ticket_classifier")
    assert list(classifier.version_policy.specific.versions) == [1, 2]
    intent = read_config(repository / "ticket_intent")
    assert list(intent.version_policy.specific.versions) == [1, 2]
    assert (repository / "ticket_intent/2/model.onnx").read_bytes().startswith(b"candidate")
    assert _steps(read_config(repository / "ticket_triage")) == {"ticket_intent": 1}
    versioned = read_config(repository / "ticket_triage_v2")
    assert versioned.name == "ticket_triage_v2"
    assert _steps(versioned) == {"ticket_intent": 2}
    assert (repository / "ticket_triage_v2/1").is_dir()
    assert published_ensembles(repository, TRIAGE_ENSEMBLE) == ["ticket_triage_v2"]
    # the committed configs stay as built
    assert not (tmp_path / "repo/ticket_triage/config.pbtxt").read_text().count("served")

    again = publish(tmp_path / "cand/ticket_classifier/2/model_card.json", repository)
    assert again == published  # publishing twice changes nothing

    publish(_candidate(tmp_path / "cand", 3, 6), repository)
    assert served_versions(repository) == {1: 2, 2: 4, 3: 6}
    assert published_ensembles(repository, TRIAGE_ENSEMBLE) == [
        "ticket_triage_v2",
        "ticket_triage_v3",
    ]
    assert newest_card(tmp_path / "cand").parent.name == "3"

    unpublish(repository)
    assert published_ensembles(repository, TRIAGE_ENSEMBLE) == []
    assert read_config(repository / "ticket_encoder").version_policy.latest.num_versions == 1


def test_a_refused_candidate_or_a_taken_version_is_not_published(tmp_path):
    repository = _base(tmp_path / "repo")
    with pytest.raises(NotPublishable, match="not a candidate that passed"):
        publish(_candidate(tmp_path / "refused", 2, 4, status="refused"), repository)
    publish(_candidate(tmp_path / "first", 2, 4), repository)
    other = _candidate(tmp_path / "second", 2, 4)
    other.write_text(other.read_text().replace('"reasons": []', '"reasons": [], "x": 1'))
    with pytest.raises(NotPublishable, match="already holds another model"):
        publish(other, repository)
    with pytest.raises(NotPublishable, match="the base model"):
        publish(_candidate(tmp_path / "third", 3, 2), repository)  # encoder 2 is base
    assert served_versions(repository) == {1: 2, 2: 4}


def test_the_command_publishes_the_newest_candidate_and_says_what_is_next(
    tmp_path, monkeypatch, capsys
):
    repository = _base(tmp_path / "repo")
    monkeypatch.setenv("EXPORT_CANDIDATES_DIR", str(tmp_path / "cand"))
    _candidate(tmp_path / "cand", 2, 4)
    assert main(["publish", "--repository", str(repository)]) == 0
    printed = capsys.readouterr().out
    assert "published triage version 2" in printed and "POST /v1/model/versions" in printed
    assert main(["publish", str(tmp_path / "none.json"), "--repository", str(repository)]) == 2
    assert "no model card" in capsys.readouterr().err


def test_a_candidate_without_its_fused_file_is_not_published(tmp_path):
    repository = _base(tmp_path / "repo")
    card = _candidate(tmp_path / "cand", 2, 4)
    (tmp_path / "cand/ticket_intent/2/model.onnx").unlink()
    with pytest.raises(NotPublishable, match=r"ticket_intent/2/model\.onnx"):
        publish(card, repository)
    assert served_versions(repository) == {1: 2}
