"""Training of the intent model on Banking77's training split: the encoder fine-tuned with the
head (`train`), or the head alone on the packaged encoder's embeddings (`train_head`)."""

import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from export.data import Split
from export.model import IntentModel, batch_encode, load_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    """The recipe measured on 2 CPU cores (see DESIGN.md); `epochs` trades time for accuracy."""

    epochs: int = 2
    batch_size: int = 32
    max_length: int = 64
    encoder_lr: float = 1e-4
    head_lr: float = 2e-3
    warmup_fraction: float = 0.06
    label_smoothing: float = 0.1
    seed: int = 13
    # The mean of the weights at the ends of the last K epochs (at most all of them); 1: the
    # last weights. Measured in session 17 (README, "Triage accuracy"): the head alone 0.3
    # points better on held-out texts, and nothing to pay when serving.
    average_last: int = 3


@dataclass
class TrainReport:
    epochs: int
    train_examples: int
    seconds: float
    test_accuracy_by_epoch: list[float] = field(default_factory=list)
    averaged_test_accuracy: float | None = None  # the weights averaged over the last epochs


def train(
    train_split: Split,
    num_intents: int,
    config: TrainConfig,
    test_split: Split | None = None,
) -> tuple[IntentModel, TrainReport]:
    """Fine-tune a fresh model; with in-process test accuracy per epoch if given a split."""
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(config.max_length)
    model = IntentModel(num_intents)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": config.encoder_lr},
            {"params": model.head.parameters(), "lr": config.head_lr},
        ]
    )
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    scheduler = _warmup_then_linear_decay(
        optimizer, steps_per_epoch * config.epochs, config.warmup_fraction
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    report = TrainReport(epochs=config.epochs, train_examples=len(train_split), seconds=0.0)
    started = time.perf_counter()
    order = list(range(len(train_split)))
    tail, tail_epochs = TailAverage(), min(config.average_last, config.epochs)
    for epoch in range(1, config.epochs + 1):
        model.train()
        random.shuffle(order)
        progress = tqdm(
            range(0, len(order), config.batch_size), desc=f"epoch {epoch}/{config.epochs}"
        )
        for start in progress:
            rows = order[start : start + config.batch_size]
            ids, mask = batch_encode(tokenizer, [train_split.texts[i] for i in rows])
            labels = torch.tensor([train_split.labels[i] for i in rows])
            loss = loss_fn(model(ids, mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            progress.set_postfix(loss=f"{loss.item():.3f}")
        if tail_epochs > 1 and epoch > config.epochs - tail_epochs:
            tail.add(model)
        if test_split is not None:
            accuracy = accuracy_in_process(model, tokenizer, test_split)
            report.test_accuracy_by_epoch.append(accuracy)
            tqdm.write(f"epoch {epoch}: in-process test accuracy {accuracy:.4f}")
    if tail_epochs > 1:
        tail.load_into(model)
        if test_split is not None:
            report.averaged_test_accuracy = accuracy_in_process(model, tokenizer, test_split)
            tqdm.write(
                f"the last {tail_epochs} epochs' weights averaged: in-process test accuracy "
                f"{report.averaged_test_accuracy:.4f}"
            )
    model.eval()
    report.seconds = round(time.perf_counter() - started, 1)
    return model, report


class TailAverage:
    """The running mean of a model's floating-point weights, taken at the ends of epochs."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                if name in self.sums:
                    self.sums[name] += value
                else:
                    self.sums[name] = value.detach().clone()
        self.count += 1

    @torch.no_grad()
    def load_into(self, model: nn.Module) -> None:
        averaged = {name: total / self.count for name, total in self.sums.items()}
        model.load_state_dict(averaged, strict=False)


@torch.inference_mode()
def predict_in_process(model: IntentModel, tokenizer, texts: list[str], batch_size: int = 64):
    """Arg-max intent index for each text, computed by the PyTorch model."""
    model.eval()
    predictions: list[int] = []
    for start in range(0, len(texts), batch_size):
        ids, mask = batch_encode(tokenizer, texts[start : start + batch_size])
        predictions.extend(model(ids, mask).argmax(dim=-1).tolist())
    return predictions


def accuracy_in_process(model: IntentModel, tokenizer, split: Split) -> float:
    predictions = predict_in_process(model, tokenizer, split.texts)
    hits = sum(p == y for p, y in zip(predictions, split.labels, strict=True))
    return hits / len(split)


@dataclass(frozen=True)
class HeadConfig:
    """Full-batch Adam on the embeddings: measured 92.24 % on Banking77's test split with the
    packaged encoder's INT8 embeddings of every training text (README, "Triage accuracy")."""

    steps: int = 300
    lr: float = 1e-2
    seed: int = 13


def train_head(
    embeddings: np.ndarray, labels: list[int], num_intents: int, config: HeadConfig
) -> tuple[IntentModel, TrainReport]:
    """The packaged encoder, not fine-tuned, with a linear head trained on `embeddings` (that
    encoder's, one row per training text)."""
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    model = IntentModel(num_intents)
    inputs, targets = torch.from_numpy(embeddings), torch.tensor(labels)
    optimizer = torch.optim.Adam(model.head.parameters(), lr=config.lr)
    for _ in tqdm(range(config.steps), desc="training the head", leave=False):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model.head(inputs), targets).backward()
        optimizer.step()
    model.eval()
    seconds = round(time.perf_counter() - started, 1)
    return model, TrainReport(epochs=0, train_examples=len(labels), seconds=seconds)


def _warmup_then_linear_decay(optimizer, total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
