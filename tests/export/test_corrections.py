"""From an agent's correction to a training row: corrections made through the orchestrator's
API (in process, no Triton) are read back by `python -m export dataset`; on SQLite and
PostgreSQL, against a tiny Banking77-shaped folder."""

import csv
import json

import pytest

from export.__main__ import main as export_main
from tests.utils.banking77 import write_banking77
from tests.utils.feedback import (
    agent_headers,
    app_without_triton,
    correct,
    intent_feedback,
    new_ticket,
)

STOLEN = {"subject": "Card stolen", "body": "Someone  took my card\non the train."}
TEST_TEXT = {"subject": "My card was", "body": "STOLEN"}  # a Banking77 test text, once joined
PIN = {"subject": "PIN", "body": "My PIN is blocked after three tries."}


@pytest.fixture
def corrected(database_url) -> dict[str, dict]:
    """Three intent corrections stored through the API: their feedback items, by name."""
    with app_without_triton(database_url) as client:
        agent = agent_headers(client, "corrections")
        tickets = {
            "stolen": new_ticket(client, agent, STOLEN, "card_arrival", model_version="3"),
            "test_text": new_ticket(client, agent, TEST_TEXT, "card_arrival", model_version="3"),
            "pin": new_ticket(client, agent, PIN),  # not triaged
        }
        correct(client, agent, tickets["stolen"], intent="lost_or_stolen_card")
        correct(client, agent, tickets["test_text"], intent="lost_or_stolen_card")
        correct(client, agent, tickets["pin"], intent="pin_blocked")  # not in the tiny Banking77
        feedback = intent_feedback(client, agent)
    return {name: feedback[ticket_id] for name, ticket_id in tickets.items()}


def test_corrections_become_a_snapshot_once(corrected, database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPORT_BANKING77_DIR", str(write_banking77(tmp_path / "banking77")))
    output = tmp_path / "datasets"
    argv = ["dataset", "--database-url", database_url, "--output", str(output)]
    assert export_main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 intent corrections" in printed and "wrote" in printed
    (folder,) = output.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["content_hash"].startswith(folder.name)
    assert manifest["correction_ids"]["used"] == [corrected["stolen"]["id"]]
    assert manifest["correction_ids"]["in_test_split"] == [corrected["test_text"]["id"]]
    assert manifest["correction_ids"]["unknown_label"] == [corrected["pin"]["id"]]
    assert manifest["corrections_used_by_model_version"] == {"3": 1}
    (used,) = manifest["corrections_used"]
    stolen = corrected["stolen"]
    assert used["feedback_id"] == stolen["id"] and used["key_id"] == stolen["key_id"]
    assert (used["predicted"], used["category"]) == ("card_arrival", "lost_or_stolen_card")
    assert used["model_version"] == "3" and used["ticket_id"] == stolen["ticket_id"]
    assert manifest["counts"]["rows_by_source"] == {"banking77": 4, "correction": 1}
    with (folder / "train.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["text"]: r["category"] for r in csv.DictReader(f)}
    assert rows["Card stolen Someone took my card on the train."] == "lost_or_stolen_card"
    assert "My card was STOLEN" not in rows and len(rows) == 5

    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert export_main(argv) == 0
    assert "not rewritten" in capsys.readouterr().out
    assert [p.name for p in output.iterdir()] == [folder.name]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written


def test_a_database_that_is_not_there_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPORT_BANKING77_DIR", str(write_banking77(tmp_path / "banking77")))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'absent.db'}")
    assert export_main(["dataset", "--output", str(tmp_path / "out")]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "out").exists()


def test_a_database_of_another_schema_is_refused_plainly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPORT_BANKING77_DIR", str(write_banking77(tmp_path / "banking77")))
    other = tmp_path / "other.db"
    other.write_bytes(b"")  # an empty SQLite file: no feedback table
    url = f"sqlite:///{other}"
    assert export_main(["dataset", "--database-url", url, "--output", str(tmp_path)]) == 1
    assert "is it the orchestrator's database" in capsys.readouterr().err
