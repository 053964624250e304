"""Training snapshots: Banking77's train split plus agents' accepted intent corrections.

`python -m export dataset` writes one folder per snapshot, `<datasets_dir>/<hash[:12]>/`, with
`train.csv` (`text,category`, as Banking77's) and `manifest.json` (the content hash, what each
row came from, what was dropped and why, the test split's hash, these rules). The functions
here are pure over rows; export/corrections.py reads the corrections from the database.

The rules, in the order they apply (RULES holds the same text; every manifest carries it):

1. Texts are normalised: stripped, and each run of whitespace made one space. Two texts are
   the same example when their normalised forms are equal once casefolded (the dedupe key). A
   correction's text is its ticket's subject and body.
2. Only intent corrections are read. A correction to a label that is not a Banking77 intent is
   rejected.
3. Banking77's test split is frozen: a row whose key is the key of a test text is dropped, from
   Banking77's train split as from corrections, so no test text is ever trained on; the
   snapshot is checked to hold none.
4. Conflicting labels for one key: the latest correction (by time, then by id) wins over older
   corrections and over Banking77's label. Within Banking77's train split the first row wins.
5. Rows with the same key and the same label collapse to one. A row's text is Banking77's when
   Banking77 has the key, else the latest correction's.
6. Rows are sorted by key. The content hash is the SHA-256 over the rows of train.csv in that
   order, each as its text, a tab, its category and a newline; the snapshot's folder is named
   by the hash's first 12 hex digits, and one that exists is not written again.
"""

import csv
import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RULES = (
    "Texts are normalised: stripped, and each run of whitespace made one space. Two texts are "
    "the same example when their normalised forms are equal once casefolded (the dedupe key). "
    "A correction's text is its ticket's subject and body.",
    "Only intent corrections are read. A correction to a label that is not a Banking77 intent "
    "is rejected.",
    "Banking77's test split is frozen: a row whose key is the key of a test text is dropped, "
    "from Banking77's train split as from corrections, so no test text is ever trained on; the "
    "snapshot is checked to hold none.",
    "Conflicting labels for one key: the latest correction (by time, then by id) wins over "
    "older corrections and over Banking77's label. Within Banking77's train split the first "
    "row wins.",
    "Rows with the same key and the same label collapse to one. A row's text is Banking77's "
    "when Banking77 has the key, else the latest correction's.",
    "Rows are sorted by key. The content hash is the SHA-256 over the rows of train.csv in "
    "that order, each as its text, a tab, its category and a newline; the snapshot's folder "
    "is named by the hash's first 12 hex digits, and one that exists is not written again.",
)
HASH_PREFIX = 12


@dataclass(frozen=True)
class Row:
    text: str
    category: str


@dataclass(frozen=True)
class Correction:
    """An agent's intent correction (a feedback row) with its provenance."""

    id: int
    text: str
    category: str
    created_at: datetime
    ticket_id: int | None = None
    key_id: int | None = None
    model_version: str | None = None
    predicted: str | None = None  # the value before the correction


class FrozenSplitViolation(AssertionError):
    """A snapshot row is a Banking77 test text: the test split would be trained on."""


@dataclass
class Snapshot:
    rows: list[Row]
    content_hash: str
    test_hash: str
    test_rows: int
    banking77: Counter = field(default_factory=Counter)  # train_rows, in_test_split, ...
    corrections: dict[str, list[int]] = field(default_factory=dict)  # outcome -> feedback ids
    used: list[Correction] = field(default_factory=list)  # those whose labels rows carry
    sources: Counter = field(default_factory=Counter)  # rows by where their label came from

    def counts(self) -> dict:
        b, c = self.banking77, self.corrections
        return {
            "rows": len(self.rows),
            "rows_by_source": dict(sorted(self.sources.items())),
            "banking77_train_rows": b["train_rows"],
            "banking77_dropped_in_test_split": b["in_test_split"],
            "corrections_read": sum(len(ids) for ids in c.values()),
            "corrections_used": len(c["used"]),
            "corrections_rejected_unknown_label": len(c["unknown_label"]),
            "corrections_dropped_in_test_split": len(c["in_test_split"]),
            "duplicates_dropped": {
                "banking77": b["duplicates"],
                "corrections": len(c["duplicate"]),
            },
            "conflicts_resolved": {
                "correction_over_banking77_label": b["relabelled"],
                "latest_correction_over_older": len(c["superseded"]),
                "first_banking77_row_over_later": b["conflicts"],
            },
        }


def normalise(text: str) -> str:
    return " ".join(text.split())


def dedupe_key(text: str) -> str:
    return normalise(text).casefold()


def rows_hash(rows: Iterable[Row]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.text}\t{row.category}\n".encode())
    return digest.hexdigest()


def sorted_rows(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (dedupe_key(r.text), r.text, r.category))


def build_snapshot(
    train: Iterable[Row],
    test: Collection[Row],
    intents: Collection[str],
    corrections: Iterable[Correction],
) -> Snapshot:
    """Banking77's `train` rows with `corrections` applied by the module's rules."""
    test_keys = {dedupe_key(r.text) for r in test}
    test_rows = sorted_rows(Row(normalise(r.text), r.category) for r in test)
    snapshot = Snapshot([], "", rows_hash(test_rows), len(test_rows))
    chosen: dict[str, Row] = {}
    for row in train:
        snapshot.banking77["train_rows"] += 1
        key = dedupe_key(row.text)
        if key in test_keys:
            snapshot.banking77["in_test_split"] += 1
        elif key not in chosen:
            chosen[key] = Row(normalise(row.text), row.category)
        elif chosen[key].category == row.category:
            snapshot.banking77["duplicates"] += 1
        else:
            snapshot.banking77["conflicts"] += 1
    sources = dict.fromkeys(chosen, "banking77")
    outcomes: dict[str, list[int]] = {
        name: [] for name in ("used", "duplicate", "superseded", "in_test_split", "unknown_label")
    }
    latest = _latest_corrections(corrections, set(intents), test_keys, outcomes)
    for key, (winner, older) in latest.items():
        for correction in older:
            same = correction.category == winner.category
            outcomes["duplicate" if same else "superseded"].append(correction.id)
        current = chosen.get(key)
        if current is not None and current.category == winner.category:
            outcomes["duplicate"].append(winner.id)
            continue
        if current is not None:
            snapshot.banking77["relabelled"] += 1
        text = current.text if current is not None else normalise(winner.text)
        chosen[key], sources[key] = Row(text, winner.category), "correction"
        outcomes["used"].append(winner.id)
        snapshot.used.append(winner)
    snapshot.rows = sorted_rows(chosen.values())
    leaked = [row.text for row in snapshot.rows if dedupe_key(row.text) in test_keys]
    if leaked:
        raise FrozenSplitViolation(f"{len(leaked)} test texts in the snapshot, e.g. {leaked[0]!r}")
    snapshot.content_hash = rows_hash(snapshot.rows)
    snapshot.corrections = {name: sorted(ids) for name, ids in outcomes.items()}
    snapshot.sources = Counter(sources.values())
    snapshot.used.sort(key=lambda c: c.id)
    return snapshot


def _latest_corrections(
    corrections: Iterable[Correction],
    intents: set[str],
    test_keys: set[str],
    outcomes: dict[str, list[int]],
) -> dict[str, tuple[Correction, list[Correction]]]:
    """Per key, the latest acceptable correction and the older ones it overrides."""
    by_key: dict[str, list[Correction]] = {}
    for correction in sorted(corrections, key=lambda c: (c.created_at, c.id)):
        key = dedupe_key(correction.text)
        if correction.category not in intents:
            outcomes["unknown_label"].append(correction.id)
        elif key in test_keys:
            outcomes["in_test_split"].append(correction.id)
        else:
            by_key.setdefault(key, []).append(correction)
    return {key: (found[-1], found[:-1]) for key, found in by_key.items()}


def summary_lines(snapshot: Snapshot) -> list[str]:
    counts, b = snapshot.counts(), snapshot.banking77
    sources = ", ".join(f"{n} from {source}" for source, n in counts["rows_by_source"].items())
    c = {name: len(ids) for name, ids in snapshot.corrections.items()}
    return [
        f"snapshot {snapshot.content_hash[:HASH_PREFIX]}: {counts['rows']} rows ({sources})",
        f"  Banking77 train: {b['train_rows']} rows; dropped {b['in_test_split']} test texts, "
        f"{b['duplicates']} duplicates, {b['conflicts']} conflicting (the first row kept)",
        f"  corrections: {counts['corrections_read']} read, {c['used']} used "
        f"({b['relabelled']} relabel a Banking77 row); dropped {c['superseded']} superseded "
        f"by a later one, {c['duplicate']} duplicates, {c['unknown_label']} unknown labels, "
        f"{c['in_test_split']} test texts",
    ]


def manifest(snapshot: Snapshot, sources: dict[str, str]) -> dict:
    by_version = Counter(c.model_version or "unrecorded" for c in snapshot.used)
    return {
        "content_hash": snapshot.content_hash,
        "hash_of": "SHA-256 over train.csv's rows in file order, each as text, tab, category, "
        "newline",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": sources,
        "counts": snapshot.counts(),
        "corrections_used_by_model_version": dict(sorted(by_version.items())),
        "correction_ids": snapshot.corrections,
        "corrections_used": [
            {
                "feedback_id": c.id,
                "ticket_id": c.ticket_id,
                "key_id": c.key_id,
                "text": normalise(c.text),
                "category": c.category,
                "predicted": c.predicted,
                "model_version": c.model_version,
                "created_at": c.created_at.isoformat(),
            }
            for c in snapshot.used
        ],
        "banking77_test": {
            "rows": snapshot.test_rows,
            "hash": snapshot.test_hash,
            "note": "frozen: never trained on; hashed as train.csv is, over its sorted rows",
        },
        "rules": list(RULES),
    }


def write_snapshot(snapshot: Snapshot, output: Path, sources: dict[str, str]) -> tuple[Path, bool]:
    """`output/<hash prefix>/` with train.csv and manifest.json; (folder, whether written).

    A snapshot with the same content is left as it is, so its created_at stays the first one.
    """
    folder = output / snapshot.content_hash[:HASH_PREFIX]
    if folder.is_dir():
        existing = json.loads((folder / "manifest.json").read_text())["content_hash"]
        if existing != snapshot.content_hash:
            raise FileExistsError(f"{folder} holds another snapshot ({existing})")
        return folder, False
    partial = output / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with (partial / "train.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "category"])
        writer.writerows((row.text, row.category) for row in snapshot.rows)
    (partial / "manifest.json").write_text(json.dumps(manifest(snapshot, sources), indent=2) + "\n")
    try:
        partial.rename(folder)  # whole or not at all: a reader never sees half a snapshot
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not folder.is_dir():
            raise
        return folder, False  # another run wrote the same snapshot meanwhile
    return folder, True


def latest_snapshot(output: Path) -> Path:
    """The snapshot under `output` written last (by its manifest's created_at)."""
    found = [
        folder
        for folder in output.glob("*")
        if folder.is_dir() and not folder.name.startswith(".")
        if (folder / "manifest.json").is_file()
    ]
    if not found:
        raise FileNotFoundError(
            f"no snapshot under {output}: write one with `python -m export dataset`"
        )
    return max(
        found, key=lambda f: (json.loads((f / "manifest.json").read_text())["created_at"], f)
    )


def read_snapshot(folder: Path) -> tuple[list[Row], dict]:
    """A snapshot's rows (train.csv, in file order) and its manifest; the hash is checked."""
    with (folder / "train.csv").open(newline="", encoding="utf-8") as f:
        rows = [Row(r["text"], r["category"]) for r in csv.DictReader(f)]
    manifest_ = json.loads((folder / "manifest.json").read_text())
    if rows_hash(rows) != manifest_["content_hash"]:
        raise ValueError(f"{folder}/train.csv does not match its manifest's content hash")
    return rows, manifest_
