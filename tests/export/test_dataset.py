"""Training snapshots' rules (export/dataset.py): pure functions over rows, no database."""

import csv
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

import export.dataset
from contracts import PROJECT_ROOT
from export.data import load_banking77
from export.dataset import (
    RULES,
    Correction,
    Row,
    build_snapshot,
    dedupe_key,
    normalise,
    write_snapshot,
)
from export.settings import ExportSettings
from tests.utils.banking77 import INTENTS, TEST, TRAIN

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TRAIN_ROWS = [Row(text, label) for text, label in TRAIN]
TEST_ROWS = [Row(text, label) for text, label in TEST]


def correction(id_: int, text: str, label: str, minutes: float = 0, **provenance) -> Correction:
    return Correction(id_, text, label, T0 + timedelta(minutes=minutes), **provenance)


def snapshot_of(corrections=(), train=TRAIN_ROWS):
    return build_snapshot(train, TEST_ROWS, INTENTS, corrections)


def labels(snapshot) -> dict[str, str]:
    return {dedupe_key(row.text): row.category for row in snapshot.rows}


def test_texts_are_normalised_and_keyed_without_case():
    assert normalise("  Where is\n my \t CARD?  ") == "Where is my CARD?"
    assert dedupe_key("  Where is\n my \t CARD?  ") == dedupe_key("where is my card?")
    assert dedupe_key("STRASSE") == dedupe_key("straße")  # casefold, not lower


def test_banking77_alone_drops_test_texts_and_duplicates():
    train = [*TRAIN_ROWS, Row("i lost  my CARD ", "lost_or_stolen_card")]
    snapshot = snapshot_of(train=train)
    counts = snapshot.counts()
    assert counts["rows"] == 4 and counts["rows_by_source"] == {"banking77": 4}
    assert counts["banking77_dropped_in_test_split"] == 1  # "Where can I use my card?"
    assert counts["duplicates_dropped"] == {"banking77": 1, "corrections": 0}
    assert Row("I lost my card", "lost_or_stolen_card") in snapshot.rows  # the first kept


def test_corrections_with_the_same_label_collapse_to_one_row():
    snapshot = snapshot_of(
        [
            correction(1, "Card not here", "card_arrival"),
            correction(2, "card  NOT here", "card_arrival", minutes=1),
            correction(3, "I lost my card", "lost_or_stolen_card", minutes=2),  # Banking77's
        ]
    )
    assert labels(snapshot)[dedupe_key("card not here")] == "card_arrival"
    assert len(snapshot.rows) == 5
    assert snapshot.corrections["used"] == [2]  # the latest; its text is the row's
    assert Row("card NOT here", "card_arrival") in snapshot.rows
    assert snapshot.corrections["duplicate"] == [1, 3]
    assert snapshot.counts()["duplicates_dropped"]["corrections"] == 2


def test_the_latest_correction_wins_over_older_ones_and_over_banking77():
    snapshot = snapshot_of(
        [
            correction(7, "I LOST my card", "exchange_rate", minutes=5),
            correction(5, "i lost my card", "card_arrival", minutes=9),  # latest by time
            correction(9, "I lost my card", "exchange_rate", minutes=1),
            correction(2, "New text", "card_arrival", minutes=3),
            correction(3, "new text", "exchange_rate", minutes=3),  # same time: higher id wins
        ]
    )
    assert labels(snapshot)[dedupe_key("I lost my card")] == "card_arrival"
    assert Row("I lost my card", "card_arrival") in snapshot.rows  # Banking77's text
    assert labels(snapshot)["new text"] == "exchange_rate"
    assert snapshot.corrections["used"] == [3, 5]
    assert snapshot.corrections["superseded"] == [2, 7, 9]
    counts = snapshot.counts()
    assert counts["conflicts_resolved"] == {
        "correction_over_banking77_label": 1,
        "latest_correction_over_older": 3,
        "first_banking77_row_over_later": 0,
    }
    assert counts["rows_by_source"] == {"banking77": 3, "correction": 2}


def test_conflicting_banking77_rows_keep_the_first():
    train = [*TRAIN_ROWS, Row("I lost my card", "card_arrival")]
    snapshot = snapshot_of(train=train)
    assert labels(snapshot)["i lost my card"] == "lost_or_stolen_card"
    assert snapshot.counts()["conflicts_resolved"]["first_banking77_row_over_later"] == 1


def test_no_test_text_is_ever_in_a_snapshot():
    corrections = [
        correction(1, " my CARD was stolen", "lost_or_stolen_card"),  # a test text
        correction(2, "My card has not arrived\nyet", "exchange_rate", minutes=1),  # another
        correction(3, "Where can I use my card?", "card_arrival", minutes=2),  # in both splits
    ]
    snapshot = snapshot_of(corrections)
    test_keys = {dedupe_key(row.text) for row in TEST_ROWS}
    assert not test_keys & set(labels(snapshot))
    assert snapshot.corrections["in_test_split"] == [1, 2, 3]
    assert snapshot.counts()["corrections_used"] == 0
    assert snapshot.counts()["banking77_dropped_in_test_split"] == 1


def test_a_correction_to_a_label_banking77_lacks_is_rejected_and_an_older_one_holds():
    snapshot = snapshot_of(
        [
            correction(1, "Block my card now", "lost_or_stolen_card"),
            correction(2, "Block my card now", "pin_blocked", minutes=1),  # not in INTENTS
        ]
    )
    assert labels(snapshot)["block my card now"] == "lost_or_stolen_card"
    assert snapshot.corrections["unknown_label"] == [2]
    assert snapshot.counts()["corrections_rejected_unknown_label"] == 1


def test_the_hash_depends_on_the_content_only():
    corrections = [
        correction(1, "Card not here", "card_arrival", model_version="1"),
        correction(2, "I lost my card", "exchange_rate", minutes=1, model_version="2"),
    ]
    first = snapshot_of(corrections)
    shuffled_train, shuffled = TRAIN_ROWS[:], corrections[:]
    random.Random(3).shuffle(shuffled_train)
    shuffled.reverse()
    again = snapshot_of(shuffled, train=shuffled_train)
    assert again.content_hash == first.content_hash and again.rows == first.rows
    lines = "".join(f"{row.text}\t{row.category}\n" for row in first.rows)
    assert first.content_hash == hashlib.sha256(lines.encode()).hexdigest()
    assert first.rows == sorted(first.rows, key=lambda row: dedupe_key(row.text))
    assert snapshot_of().content_hash != first.content_hash
    assert [(c.id, c.model_version) for c in first.used] == [(1, "1"), (2, "2")]


def test_a_snapshot_is_written_once_and_read_back_as_banking77(tmp_path):
    snapshot = snapshot_of([correction(1, "Card not here", "card_arrival")])
    sources = {"banking77_dir": "tiny", "database": "sqlite://"}
    folder, written = write_snapshot(snapshot, tmp_path, sources)
    assert written and folder == tmp_path / snapshot.content_hash[:12]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["content_hash"] == snapshot.content_hash
    assert manifest["rules"] == list(RULES) and manifest["counts"] == snapshot.counts()
    assert manifest["banking77_test"]["rows"] == len(TEST)
    with (folder / "train.csv").open(newline="", encoding="utf-8") as f:
        rows = [Row(r["text"], r["category"]) for r in csv.DictReader(f)]
    assert rows == snapshot.rows
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again, written = write_snapshot(
        snapshot_of([correction(1, " Card  not here", "card_arrival")]), tmp_path, sources
    )
    assert again == folder and not written
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no partial folder left


def test_the_written_rules_are_the_applied_ones():
    """RULES (copied into every manifest) read the same in the module docstring and README."""
    docstring = normalise(export.dataset.__doc__)
    readme = normalise((PROJECT_ROOT / "README.md").read_text())
    for rule in RULES:
        assert normalise(rule) in docstring
        assert normalise(rule) in readme


def test_real_banking77_train_and_test_share_no_snapshot_row():
    folder = ExportSettings().banking77_dir
    if not (folder / "train.csv").is_file():
        pytest.skip(f"Banking77 is not at {folder}")
    data = load_banking77(folder)
    rows = {
        split: [Row(t, data.intents[i]) for t, i in zip(s.texts, s.labels, strict=True)]
        for split, s in (("train", data.train), ("test", data.test))
    }
    snapshot = build_snapshot(rows["train"], rows["test"], data.intents, [])
    test_keys = {dedupe_key(row.text) for row in rows["test"]}
    assert not any(dedupe_key(row.text) in test_keys for row in snapshot.rows)
    counts = snapshot.counts()
    assert counts["rows"] + counts["banking77_dropped_in_test_split"] + counts[
        "duplicates_dropped"
    ]["banking77"] == len(data.train)
