"""`python -m export tune-vote`: the vote's and the lexical view's settings chosen on held-out
training texts.

A seeded tenth of every intent's training texts is held out. The recipe (`--epochs`, 0 for the
quick one) trains on the other nine tenths, the vote indexes them (the packaged encoder's INT8
embeddings, as the build makes them), the lexical view (export/lexical.py) is fitted on them,
and every (neighbours, temperature, weight, lexical weight) of the grid is scored on the
held-out tenth; the best is then scored once on the test split, as it would
serve: trained and indexed on the whole training split. The test split chooses nothing.
Scores are computed in NumPy (export/rerank.py's reference, which the graph is held to).
"""

import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from itertools import product
from pathlib import Path

import numpy as np
import torch

from contracts.models import SERVED_MAX_TOKENS
from contracts.runtime import usable_cores
from export.data import Split, load_banking77
from export.lexical import DEFAULT_LEXICAL, blend, fit_lexical, lexical_probabilities, token_ids
from export.model import IntentModel, load_tokenizer
from export.onnx_export import export_encoder, export_packaged_encoder
from export.quantize import quantize_encoder
from export.rerank import (
    ExampleIndex,
    RerankSettings,
    embed_texts,
    index_of,
    neighbour_vote,
)
from export.settings import ExportSettings
from export.train import HeadConfig, TrainConfig, train, train_head

GRID = {
    "neighbours": (5, 10, 20),
    "temperature": (0.02, 0.05, 0.1),
    "weight": (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0),
}
LEXICAL_WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5)
# a head on the packaged encoder's embeddings (the quick recipe's) beside a fine-tuned head,
# blended before the vote; 0: without it. Measured, not served (README, "Triage accuracy")
PACKAGED_HEAD_WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5)
HELD_OUT_FRACTION = 0.1


def held_out_rows(split: Split, seed: int, fraction: float = HELD_OUT_FRACTION) -> list[int]:
    """A seeded `fraction` of every intent's rows (at least one each)."""
    rng = random.Random(seed)  # nosec B311  # a reproducible split, not a secret
    by_intent: dict[int, list[int]] = {}
    for row, label in enumerate(split.labels):
        by_intent.setdefault(label, []).append(row)
    chosen: list[int] = []
    for rows in by_intent.values():
        chosen += rng.sample(rows, max(1, int(len(rows) * fraction)))
    return sorted(chosen)


def subset(split: Split, rows) -> Split:
    return Split([split.texts[i] for i in rows], [split.labels[i] for i in rows])


class Recipe:
    """Trains a head on the packaged encoder's embeddings, or (when `epochs`) fine-tunes the
    encoder with its head, and scores texts with it."""

    def __init__(
        self,
        settings: ExportSettings,
        epochs: int,
        intents: int,
        packaged: Path,
        average_last: int | None = None,
    ):
        self.settings, self.epochs, self.intents, self.packaged = (
            settings,
            epochs,
            intents,
            packaged,
        )
        self.average_last = average_last
        self.tokenizer = load_tokenizer(SERVED_MAX_TOKENS)

    def fine_tuned_probabilities(self, train_split: Split, texts: list[str]) -> np.ndarray:
        """Fine-tune on `train_split` (`epochs`), score `texts` with its INT8 export."""
        work = self.settings.work_dir
        config = TrainConfig(epochs=self.epochs, seed=self.settings.seed)
        if self.average_last is not None:
            config = replace(config, average_last=self.average_last)
        model, _ = train(train_split, self.intents, config)
        fp32, int8 = work / "tune.encoder.fp32.onnx", work / "tune.encoder.int8.onnx"
        export_encoder(model, fp32)
        quantize_encoder(fp32, int8)
        return _head_softmax(model, embed_texts(int8, self.tokenizer, texts))

    def packaged_head_probabilities(
        self, examples: np.ndarray, labels: list[int], queries: np.ndarray
    ) -> np.ndarray:
        """A head trained on the packaged encoder's `examples`, scoring its `queries`."""
        config = HeadConfig(seed=self.settings.seed)
        model, _ = train_head(examples, labels, self.intents, config)
        return _head_softmax(model, queries)


def _head_softmax(model: IntentModel, embeddings: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = model.head(torch.from_numpy(embeddings))
    return torch.softmax(logits, dim=-1).numpy()


@dataclass(frozen=True)
class Scoring:
    """The texts of `split` scored with a head and a vote over `examples`."""

    split: Split
    head: np.ndarray  # the head's probabilities, one row per text
    queries: np.ndarray  # the packaged encoder's embeddings of the texts
    index: ExampleIndex
    lexical: np.ndarray  # the lexical view's probabilities
    # the packaged encoder's head's probabilities, beside a fine-tuned head (None: the quick
    # recipe, whose head is that one)
    packaged_head: np.ndarray | None = None
    votes: dict = field(default_factory=dict, compare=False, repr=False)  # by (k, temperature)

    def probabilities(
        self, chosen: RerankSettings, lexical_weight: float, packaged_weight: float = 0.0
    ) -> np.ndarray:
        head = self.head
        if packaged_weight:
            head = blend(head, self.packaged_head, packaged_weight)
        key = (chosen.neighbours, chosen.temperature)
        if key not in self.votes:  # the grid shares each vote over its weights
            self.votes[key] = neighbour_vote(self.queries, self.index, chosen, head.shape[1])
        voted = blend(head, self.votes[key], chosen.weight)
        return blend(voted, self.lexical, lexical_weight)

    def rows(self, start: int, stop: int) -> "Scoring":
        """The texts from `start` to `stop`, as scored together with the others."""
        part = slice(start, stop)
        return Scoring(
            Split(self.split.texts[part], self.split.labels[part]),
            self.head[part],
            self.queries[part],
            self.index,
            self.lexical[part],
            None if self.packaged_head is None else self.packaged_head[part],
        )

    def accuracy(
        self, chosen: RerankSettings, lexical_weight: float = 0.0, packaged_weight: float = 0.0
    ) -> float:
        blended = self.probabilities(chosen, lexical_weight, packaged_weight)
        return float((blended.argmax(axis=1) == np.array(self.split.labels)).mean())


def scoring(recipe: Recipe, examples: Split, split: Split) -> Scoring:
    """Train on `examples` (and index them, and fit the lexical view), embed `split`."""
    embed = partial(embed_texts, recipe.packaged, recipe.tokenizer)
    example_embeddings, queries = embed(examples.texts), embed(split.texts)
    index = index_of(example_embeddings, examples.labels)
    lexical = fit_lexical(
        token_ids(recipe.tokenizer, examples.texts),
        examples.labels,
        recipe.intents,
        DEFAULT_LEXICAL,
    )
    packaged_head = recipe.packaged_head_probabilities(example_embeddings, examples.labels, queries)
    if recipe.epochs:
        head = recipe.fine_tuned_probabilities(examples, split.texts)
    else:  # the quick recipe's head is the packaged encoder's
        head, packaged_head = packaged_head, None
    return Scoring(
        split,
        head,
        queries,
        index,
        lexical_probabilities(lexical, token_ids(recipe.tokenizer, split.texts)),
        packaged_head,
    )


def tune(
    settings: ExportSettings,
    epochs: int,
    served: tuple[RerankSettings, float, float],
    test: bool = True,
    average_last: int | None = None,
) -> dict:
    """`served`: the (vote, lexical weight, packaged head's weight) the recipe serves now, scored
    beside the best. Without `test`, nothing is trained on the whole split (half the time): the
    choice, and the test split scored by the nine tenths' model as a report."""
    started = time.perf_counter()
    torch.set_num_threads(settings.torch_threads)
    data = load_banking77(settings.banking77_dir)
    packaged = settings.work_dir / "tune.packaged.int8.onnx"
    export_packaged_encoder(settings.work_dir / "tune.packaged.fp32.onnx", packaged)
    recipe = Recipe(settings, epochs, len(data.intents), packaged, average_last)
    held = held_out_rows(data.train, settings.seed)
    kept = sorted(set(range(len(data.train))) - set(held))
    print(f"== holding out {len(held)} of {len(data.train)} training texts", flush=True)
    held_split = subset(data.train, held)
    # Without `test`, the nine tenths' model scores the test split too: a side-by-side report
    # of the same settings, trained on less, that chooses nothing.
    scored = scoring(
        recipe,
        subset(data.train, kept),
        held_split
        if test
        else Split(held_split.texts + data.test.texts, held_split.labels + data.test.labels),
    )
    held_out = scored.rows(0, len(held))
    scores = {
        (chosen, lexical, packaged_weight): held_out.accuracy(chosen, lexical, packaged_weight)
        for chosen in (RerankSettings(*values) for values in product(*GRID.values()))
        for lexical in LEXICAL_WEIGHTS
        for packaged_weight in (PACKAGED_HEAD_WEIGHTS if epochs else (0.0,))
    }
    best, lexical, packaged_weight = _best(scores)
    without = _best({key: score for key, score in scores.items() if not key[2]})
    head_alone = replace(best, weight=0.0)
    then = "; scoring it on the test split" if test else ""
    print(
        f"== best on the held-out texts: {best}, lexical weight {lexical}, packaged head's "
        f"weight {packaged_weight}{then}",
        flush=True,
    )
    steps = {
        "head_alone": (head_alone, 0.0, 0.0),
        "with_the_vote": (best, 0.0, 0.0),
        "with_the_vote_and_the_lexical_view": (best, lexical, 0.0),
        "with_the_packaged_head_too": (best, lexical, packaged_weight),
        "best_without_the_packaged_head": without,
        "served_settings": served,
    }
    if epochs:  # the quick recipe's head is the packaged encoder's
        steps["packaged_head_alone"] = (head_alone, 0.0, 1.0)
    result = {
        "command": " ".join(["python -m export", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cores_usable": usable_cores()},
        "epochs": epochs,
        "average_last": min(recipe.average_last or TrainConfig.average_last, epochs) or None,
        "held_out_texts": len(held),
        "grid_size": len(scores),
        "best": _described((best, lexical, packaged_weight)),
        "best_without_the_packaged_head": _described(without),
        "held_out_accuracy": {
            name: round(held_out.accuracy(*chosen), 4) for name, chosen in steps.items()
        },
        "served": _described(served),
        "runners_up": [
            {**_described(key), "held_out_accuracy": round(score, 4)}
            for key, score in sorted(scores.items(), key=lambda s: -s[1])
            if key != (best, lexical, packaged_weight)
        ][:5],
    }
    if test:
        scored = scoring(recipe, data.train, data.test)
        result["test_accuracy"] = {
            name: round(scored.accuracy(*chosen), 4) for name, chosen in steps.items()
        }
    else:
        on_test = scored.rows(len(held), len(scored.split.texts))
        result["test_accuracy_trained_on_nine_tenths"] = {
            name: round(on_test.accuracy(*chosen), 4) for name, chosen in steps.items()
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _best(scores: dict) -> tuple[RerankSettings, float, float]:
    """The best-scoring settings; on a tie, the vote's weight nearest 0.5, then the smallest
    packaged head's weight."""
    return max(scores, key=lambda s: (scores[s], -abs(s[0].weight - 0.5), -s[2]))


def _described(key: tuple[RerankSettings, float, float]) -> dict:
    chosen, lexical, packaged_weight = key
    return {**asdict(chosen), "lexical_weight": lexical, "packaged_head_weight": packaged_weight}
