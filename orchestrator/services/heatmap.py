"""Why the model answered as it did: occlusion sensitivity, drawn over the x-ray.

Each copy of the 28 x 28 input has one square patch set to the training mean (0 once
normalised); the classifier scores every copy in a few batched calls to the same Triton model
that diagnosed it. A region matters as much as hiding it moves the probability away from the
answer given. No gradients are needed, so the served ONNX file (INT8 or fp32, on any
backend) is what is explained. README, "Why: the heatmap", has the measurements behind the
patch size and stride.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from contracts.xray import SIZE

# 4 x 4 patches every 2 pixels: 170 copies (three calls), as faithful as 3 x 3 every pixel
# (677 copies) by the deletion test, far more than larger patches (README, "Why: the heatmap";
# loadtest/results/xray-heatmap-choice.json)
PATCH, STRIDE = 4, 2
# The overlay is drawn at the image's own size, within these bounds on its longer side.
MIN_SIDE, MAX_SIDE = 280, 768


@dataclass(frozen=True)
class Occlusions:
    """The copies to score (the untouched input first) and which pixels each one hides."""

    pixels: np.ndarray  # float32 [1 + P, 1, SIZE, SIZE]
    masks: np.ndarray  # bool [P, SIZE, SIZE]


def occlusions(pixels: np.ndarray, patch: int = PATCH, stride: int = STRIDE) -> Occlusions:
    """`pixels`: one normalised input [1, SIZE, SIZE]."""
    starts = list(range(0, SIZE - patch + 1, stride))
    if starts[-1] != SIZE - patch:
        starts.append(SIZE - patch)  # the last row and column are covered too
    masks = np.zeros((len(starts) ** 2, SIZE, SIZE), dtype=bool)
    for i, (top, left) in enumerate((t, s) for t in starts for s in starts):
        masks[i, top : top + patch, left : left + patch] = True
    copies = np.repeat(pixels[None], len(masks) + 1, axis=0)
    copies[1:, 0][masks] = 0.0
    return Occlusions(copies.astype(np.float32), masks)


def importance(probabilities: np.ndarray, masks: np.ndarray, pneumonia: bool) -> np.ndarray:
    """[SIZE, SIZE] in [0, 1]: how much hiding each pixel moved the probability away from the
    answer (averaged over the patches that cover it); 0 where hiding it did not."""
    base, occluded = probabilities[0], probabilities[1:]
    evidence = (base - occluded) if pneumonia else (occluded - base)
    covered = masks.sum(axis=0)
    heat = (evidence[:, None, None] * masks).sum(axis=0) / np.maximum(covered, 1)
    heat = np.clip(heat, 0.0, None)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def overlay_png(grey: Image.Image, heat: np.ndarray) -> bytes:
    """The x-ray (decoded grey) with the heat over it (transparent where 0, red to yellow as it
    grows), as PNG bytes."""
    longer = max(grey.size)
    scale = min(MAX_SIDE, max(MIN_SIDE, longer)) / longer
    size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
    background = np.asarray(grey.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    heat_image = Image.fromarray((heat * 255).astype(np.uint8), "L")
    h = np.asarray(heat_image.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255
    colour = np.stack([np.ones_like(h), np.clip(2 * h - 0.6, 0, 1), np.zeros_like(h)], axis=-1)
    alpha = (0.65 * np.clip(h * 1.5 - 0.15, 0, 1))[..., None]
    rgb = (1 - alpha) * background[..., None] + alpha * colour * 255
    out = io.BytesIO()
    Image.fromarray(rgb.round().astype(np.uint8), "RGB").save(out, format="PNG")
    return out.getvalue()
