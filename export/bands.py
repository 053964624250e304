"""`python -m export bands`: the confidence bands' thresholds, chosen on held-out training
texts, measured once on Banking77's test split with the served file, and written beside it.

Validation: a seeded tenth of every intent's training texts is held out (export/tune.py), the
recipe (`--epochs`, 0 for `make up`'s quick one, with its vote) trains on the other nine
tenths, and each held-out text gets its confidence, the served file's top probability (the
lexical view included). Then:

- `high_from`: the lowest confidence at which the held-out texts at or above it are right at
  least HIGH_AIM + MARGIN of the time (the aim is HIGH_AIM on the test split; the margin
  absorbs the difference between the two splits);
- `low_below`: the highest confidence under which the held-out texts are right at most
  LOW_ACCURACY of the time: those are the review queue.

The test split chooses nothing: it is scored once, with the served `ticket_intent` file, and
the report (each band's share and accuracy, "high"'s precision) is written into `bands.json`.
"""

import sys
import time
from pathlib import Path

import numpy as np

from contracts.bands import BANDS, BandThresholds, bands_file
from contracts.models import INTENT_FILE
from contracts.runtime import ort_session
from export.data import load_banking77
from export.fuse import TEXT_INPUT
from export.lexical import lexical_for
from export.onnx_export import export_packaged_encoder
from export.rerank import vote_for
from export.settings import ExportSettings
from export.tune import Recipe, held_out_rows, scoring, subset

HIGH_AIM = 0.97  # "high" right at least this often on the test split (issue 20)
MARGIN = 0.01
LOW_ACCURACY = 0.5  # the review queue: texts the model gets right no more often than a coin
BATCH = 64


def choose(confidence: np.ndarray, correct: np.ndarray) -> BandThresholds:
    """The thresholds on held-out texts' confidences and whether each was right."""
    order = np.argsort(-confidence, kind="stable")
    ranked, right = confidence[order], correct[order].astype(np.float64)
    precision_at = np.cumsum(right) / np.arange(1, len(right) + 1)  # of the top k
    meets = np.flatnonzero(precision_at >= HIGH_AIM + MARGIN)
    high_from = float(ranked[meets.max()]) if len(meets) else float(np.nextafter(1.0, 2.0))
    rising = ranked[::-1]  # lowest first
    accuracy_below = np.cumsum(right[::-1]) / np.arange(1, len(right) + 1)
    under = np.flatnonzero(accuracy_below <= LOW_ACCURACY)
    if not len(under):
        low_below = 0.0  # right more than half the time at every confidence: no review queue
    elif under.max() + 1 == len(rising):
        low_below = high_from  # wrong as often as right everywhere: all of it to review
    else:
        low_below = float(rising[under.max() + 1])
    return BandThresholds(high_from=high_from, low_below=min(low_below, high_from))


def measure(confidence: np.ndarray, correct: np.ndarray, thresholds: BandThresholds) -> dict:
    """Each band's share of the texts and how often its intents are right."""
    bands = np.array([thresholds.band(float(c)) for c in confidence])
    found = {}
    for band in BANDS:
        members = bands == band
        found[band] = {
            "texts": int(members.sum()),
            "share": round(float(members.mean()), 4),
            "accuracy": round(float(correct[members].mean()), 4) if members.any() else None,
        }
    return found


def served_confidence(intent_file: Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The served file's intent and confidence for each text."""
    session = ort_session(intent_file)
    intents, confidence = [], []
    for start in range(0, len(texts), BATCH):
        feed = np.array(texts[start : start + BATCH], dtype=object).reshape(-1, 1)
        top, score = session.run(["intent", "confidence"], {TEXT_INPUT: feed})
        intents += [str(i) for i in top[:, 0]]
        confidence.append(score[:, 0])
    return intents, np.concatenate(confidence)


def run_bands(
    settings: ExportSettings, repository: Path, epochs: int = 0, test_limit: int | None = None
) -> dict:
    """Choose, measure and write the bands of the repository's triage version 1."""
    started = time.perf_counter()
    data = load_banking77(settings.banking77_dir)
    packaged = settings.work_dir / "bands.packaged.int8.onnx"
    export_packaged_encoder(settings.work_dir / "bands.packaged.fp32.onnx", packaged)
    recipe = Recipe(settings, epochs, len(data.intents), packaged)
    held = held_out_rows(data.train, settings.seed)
    kept = sorted(set(range(len(data.train))) - set(held))
    print(f"== 1/3 training on {len(kept)} texts, {len(held)} held out", flush=True)
    held_out = scoring(recipe, subset(data.train, kept), subset(data.train, held))
    probabilities = held_out.probabilities(vote_for(epochs), lexical_for(epochs).weight)
    labels = np.array(held_out.split.labels)
    validation = (probabilities.max(axis=1), probabilities.argmax(axis=1) == labels)
    thresholds = choose(*validation)
    print(f"== 2/3 thresholds {thresholds}; the test split through {INTENT_FILE}", flush=True)
    test = data.test if test_limit is None else subset(data.test, range(test_limit))
    intents, confidence = served_confidence(repository / INTENT_FILE, test.texts)
    pairs = zip(test.labels, intents, strict=True)
    correct = np.array([data.intents[label] == intent for label, intent in pairs])
    report = {
        "command": " ".join(["python -m export", *sys.argv[1:]]),
        "recipe_epochs": epochs,
        "aim": {
            "high_precision_on_test": HIGH_AIM,
            "chosen_at_on_validation": HIGH_AIM + MARGIN,
            "low_accuracy_at_most": LOW_ACCURACY,
        },
        "validation": measure(*validation, thresholds),
        "test": measure(confidence, correct, thresholds),
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = repository / bands_file(1)
    print(f"== 3/3 writing {path}", flush=True)
    thresholds.write(path, report)
    return {"thresholds": thresholds.__dict__, **report}
