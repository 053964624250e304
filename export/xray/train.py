"""Training on PneumoniaMNIST's training split with augmentation; the epoch kept is the one with
the best AUC on the validation split."""

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from contracts.images import normalise
from export.xray import EPOCHS
from export.xray.data import ImageSplit
from export.xray.metrics import auc
from export.xray.model import XrayNet


@dataclass(frozen=True)
class XrayTrainConfig:
    epochs: int = EPOCHS
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    width: int = 32
    # augmentation: rotation (degrees), shift (pixels), zoom (fraction), contrast and
    # brightness (fractions of the normalised range)
    rotation: float = 10.0
    shift: float = 2.0
    zoom: float = 0.1
    contrast: float = 0.15
    brightness: float = 0.15
    seed: int = 13


@dataclass
class XrayTrainReport:
    epochs: int
    train_images: int
    seconds: float
    best_epoch: int = 0
    val_auc_by_epoch: list[float] = field(default_factory=list)


def augment(
    images: torch.Tensor, config: XrayTrainConfig, generator: torch.Generator
) -> torch.Tensor:
    """Random rotation, shift, zoom, contrast and brightness, one draw per image."""
    n, _, height, _ = images.shape

    def uniform(scale: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * scale

    angle = uniform(math.radians(config.rotation))
    zoom = 1 + uniform(config.zoom)
    shift_x, shift_y = uniform(2 * config.shift / height), uniform(2 * config.shift / height)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    contrast = (1 + uniform(config.contrast)).view(n, 1, 1, 1)
    brightness = uniform(config.brightness).view(n, 1, 1, 1)
    return moved * contrast + brightness


def predict_logits(model: XrayNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's pneumonia logits for uint8 images [N, 28, 28]."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(normalise(images[start : start + batch_size]))
            out.append(model(batch).reshape(-1).numpy())
    return np.concatenate(out)


def train_xray(
    train: ImageSplit, val: ImageSplit, config: XrayTrainConfig
) -> tuple[XrayNet, XrayTrainReport]:
    """Train a fresh model; keep the weights of the epoch with the best validation AUC."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = XrayNet(config.width)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _warmup_cosine(config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch),
    )
    images = torch.from_numpy(normalise(train.images))
    labels = torch.from_numpy(train.labels.astype(np.float32)).view(-1, 1)
    report = XrayTrainReport(config.epochs, len(train), 0.0)
    best_auc, best_state = -1.0, copy.deepcopy(model.state_dict())
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"x-ray epoch {epoch}/{config.epochs}", unit="step")
        for step in bar:
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            loss = F.binary_cross_entropy_with_logits(
                model(augment(images[batch], config, generator)), labels[batch]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        val_auc = auc(predict_logits(model, val.images), val.labels)
        report.val_auc_by_epoch.append(round(val_auc, 4))
        tqdm.write(f"epoch {epoch}: validation AUC {val_auc:.4f}")
        if val_auc > best_auc:
            best_auc, best_state, report.best_epoch = (
                val_auc,
                copy.deepcopy(model.state_dict()),
                epoch,
            )
    model.load_state_dict(best_state)
    model.eval()
    report.seconds = round(time.perf_counter() - started, 1)
    return model, report


def _warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
