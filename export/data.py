"""Banking77: the intent data set the classifier is trained and evaluated on."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

HOW_TO_GET = (
    "Banking77 (CC BY 4.0) comes from PolyAI-LDN/task-specific-datasets, folder banking_data/. "
    "Put train.csv, test.csv and categories.json in one folder and set EXPORT_BANKING77_DIR to it."
)


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, limit: int | None) -> "Split":
        """The first `limit` examples (all of them when `limit` is None or 0)."""
        if not limit:
            return self
        return Split(self.texts[:limit], self.labels[:limit])

    def spread(self, limit: int | None) -> "Split":
        """`limit` examples taken across labels in turn (each label's first, then each one's
        second, ...), so that a short evaluation still sees every label; all when None or 0."""
        if not limit or limit >= len(self):
            return self
        by_label: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_label.setdefault(label, []).append(i)
        chosen: list[int] = []
        for rank in range(max(len(rows) for rows in by_label.values())):
            chosen += [rows[rank] for rows in by_label.values() if rank < len(rows)]
            if len(chosen) >= limit:
                break
        rows = sorted(chosen[:limit])
        return Split([self.texts[i] for i in rows], [self.labels[i] for i in rows])

    def head_per_label(self, per_label: int) -> "Split":
        """The first `per_label` examples of every label: a small, balanced subset."""
        seen: dict[int, int] = {}
        texts, labels = [], []
        for text, label in zip(self.texts, self.labels, strict=True):
            if seen.get(label, 0) < per_label:
                seen[label] = seen.get(label, 0) + 1
                texts.append(text)
                labels.append(label)
        return Split(texts, labels)


@dataclass(frozen=True)
class Banking77:
    intents: list[str]
    train: Split
    test: Split


def load_banking77(folder: Path) -> Banking77:
    """Read the data set from `folder`; fail with instructions when it is missing."""
    missing = [
        n for n in ("categories.json", "train.csv", "test.csv") if not (folder / n).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}. {HOW_TO_GET}")
    intents = json.loads((folder / "categories.json").read_text())
    index = {name: i for i, name in enumerate(intents)}
    return Banking77(
        intents=intents,
        train=_read_split(folder / "train.csv", index),
        test=_read_split(folder / "test.csv", index),
    )


def _read_split(path: Path, index: dict[str, int]) -> Split:
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            texts.append(row["text"].strip())
            labels.append(index[row["category"]])
    return Split(texts, labels)
