"""A tiny Banking77-shaped folder (categories.json, train.csv, test.csv) for fast tests."""

import csv
import json
from pathlib import Path

INTENTS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
TRAIN = [
    ("I am still waiting on my card?", "card_arrival"),
    ("When will my card get here?", "card_arrival"),
    ("I lost my card", "lost_or_stolen_card"),
    ("What exchange rate do you use?", "exchange_rate"),
    ("Where can I use my card?", "card_arrival"),  # also a test text, as in the real data
]
TEST = [
    ("My card has not arrived yet", "card_arrival"),
    ("where can I use my card?", "card_arrival"),
    ("My card was stolen", "lost_or_stolen_card"),
]


def write_banking77(folder: Path, train=TRAIN, test=TEST, intents=INTENTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "categories.json").write_text(json.dumps(intents))
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with (folder / name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "category"])
            writer.writerows(rows)
    return folder
