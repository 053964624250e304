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
from dataclasses import asdict, dataclass, replace
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
    reference_probabilities,
)
from export.settings import ExportSettings
from export.train import HeadConfig, TrainConfig, train, train_head

GRID = {
    "neighbours": (5, 10, 20),
    "temperature": (0.02, 0.05, 0.1),
    "weight": (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0),
}
LEXICAL_WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5)
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
    """Trains the head (and the encoder, when `epochs`) and scores texts with it."""

    def __init__(self, settings: ExportSettings, epochs: int, intents: int, packaged: Path):
        self.settings, self.epochs, self.intents, self.packaged = (
            settings,
            epochs,
            intents,
            packaged,
        )
        self.tokenizer = load_tokenizer(SERVED_MAX_TOKENS)

    def head_probabilities(self, train_split: Split, texts: list[str]) -> np.ndarray:
        work = self.settings.work_dir
        if self.epochs:
            config = TrainConfig(epochs=self.epochs, seed=self.settings.seed)
            model, _ = train(train_split, self.intents, config)
            fp32, int8 = work / "tune.encoder.fp32.onnx", work / "tune.encoder.int8.onnx"
            export_encoder(model, fp32)
            quantize_encoder(fp32, int8)
            embeddings = embed_texts(int8, self.tokenizer, texts)
        else:
            train_embeddings = embed_texts(self.packaged, self.tokenizer, train_split.texts)
            model, _ = train_head(
                train_embeddings,
                train_split.labels,
                self.intents,
                HeadConfig(seed=self.settings.seed),
            )
            embeddings = embed_texts(self.packaged, self.tokenizer, texts)
        return _head_softmax(model, embeddings)


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

    def probabilities(self, chosen: RerankSettings, lexical_weight: float) -> np.ndarray:
        voted = reference_probabilities(self.head, self.queries, self.index, chosen)
        return blend(voted, self.lexical, lexical_weight)

    def accuracy(self, chosen: RerankSettings, lexical_weight: float = 0.0) -> float:
        blended = self.probabilities(chosen, lexical_weight)
        return float((blended.argmax(axis=1) == np.array(self.split.labels)).mean())


def scoring(recipe: Recipe, examples: Split, split: Split) -> Scoring:
    """Train on `examples` (and index them, and fit the lexical view), embed `split`."""
    embed = partial(embed_texts, recipe.packaged, recipe.tokenizer)
    index = index_of(embed(examples.texts), examples.labels)
    lexical = fit_lexical(
        token_ids(recipe.tokenizer, examples.texts),
        examples.labels,
        recipe.intents,
        DEFAULT_LEXICAL,
    )
    return Scoring(
        split,
        recipe.head_probabilities(examples, split.texts),
        embed(split.texts),
        index,
        lexical_probabilities(lexical, token_ids(recipe.tokenizer, split.texts)),
    )


def tune(
    settings: ExportSettings,
    epochs: int,
    served: tuple[RerankSettings, float],
    test: bool = True,
) -> dict:
    """`served`: the (vote, lexical weight) the recipe serves now, scored beside the best.
    Without `test`, nothing is trained on the whole split: the choice alone (half the time)."""
    started = time.perf_counter()
    torch.set_num_threads(settings.torch_threads)
    data = load_banking77(settings.banking77_dir)
    packaged = settings.work_dir / "tune.packaged.int8.onnx"
    export_packaged_encoder(settings.work_dir / "tune.packaged.fp32.onnx", packaged)
    recipe = Recipe(settings, epochs, len(data.intents), packaged)
    held = held_out_rows(data.train, settings.seed)
    kept = sorted(set(range(len(data.train))) - set(held))
    print(f"== holding out {len(held)} of {len(data.train)} training texts", flush=True)
    held_out = scoring(recipe, subset(data.train, kept), subset(data.train, held))
    scores = {
        (chosen, lexical): held_out.accuracy(chosen, lexical)
        for chosen in (RerankSettings(*values) for values in product(*GRID.values()))
        for lexical in LEXICAL_WEIGHTS
    }
    best, lexical = max(scores, key=lambda s: (scores[s], -abs(s[0].weight - 0.5)))
    head_alone = replace(best, weight=0.0)
    then = "; scoring it on the test split" if test else ""
    print(f"== best on the held-out texts: {best}, lexical weight {lexical}{then}", flush=True)
    result = {
        "command": " ".join(["python -m export", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cores_usable": usable_cores()},
        "epochs": epochs,
        "held_out_texts": len(held),
        "grid_size": len(scores),
        "best": {**asdict(best), "lexical_weight": lexical},
        "held_out_accuracy": {
            "head_alone": round(scores[head_alone, 0.0], 4),
            "with_the_vote": round(scores[best, 0.0], 4),
            "with_the_vote_and_the_lexical_view": round(scores[best, lexical], 4),
            "served_settings": round(held_out.accuracy(*served), 4),
        },
        "served": {**asdict(served[0]), "lexical_weight": served[1]},
        "runners_up": [
            {**asdict(chosen), "lexical_weight": weight, "held_out_accuracy": round(score, 4)}
            for (chosen, weight), score in sorted(scores.items(), key=lambda s: -s[1])
            if (chosen, weight) != (best, lexical)
        ][:5],
    }
    if test:
        scored = scoring(recipe, data.train, data.test)
        result["test_accuracy"] = {
            "head_alone": round(scored.accuracy(head_alone), 4),
            "with_the_vote": round(scored.accuracy(best), 4),
            "with_the_vote_and_the_lexical_view": round(scored.accuracy(best, lexical), 4),
            "served_settings": round(scored.accuracy(*served), 4),
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
