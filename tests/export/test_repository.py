"""Copying the committed configs into another repository (tests, variants)."""

from export import repository as repository_module
from export.repository import ensure_configs


def test_only_the_committed_configs_and_code_are_copied(tmp_path, monkeypatch):
    # a project repository after `export build` and `export publish` of triage version 2
    project = tmp_path / "project"
    files = {
        "ticket_intent/config.pbtxt": "committed",
        "ticket_tokenizer/1/model.py": "committed",
        "ticket_intent/1/model.onnx": "built",
        "ticket_intent/2/model.onnx": "published",
        "ticket_intent/configs/served.pbtxt": "published",
        "ticket_classifier/2/model_card.json": "published",
        "ticket_triage_v2/config.pbtxt": "published",
        "ticket_tokenizer/1/tokenizer.json": "built",
    }
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    monkeypatch.setattr(repository_module, "COMMITTED_REPOSITORY", project)
    copy = tmp_path / "copy"
    ensure_configs(copy)
    copied = {str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()}
    assert copied == {"ticket_intent/config.pbtxt", "ticket_tokenizer/1/model.py"}
    assert not (copy / "ticket_intent/2").exists()
