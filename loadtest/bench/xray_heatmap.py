"""`python -m loadtest.bench xray-heatmap`: which occlusion patch the heatmap uses, measured.

For each patch size and stride, over the first `--images` test images, in process with the
installed ONNX file:
- the time one heatmap takes (all occluded copies in one batch) and how many copies it scores;
- faithfulness, by deletion: hide the 10 % of pixels the heatmap ranks highest and see how far
  the probability moves away from the answer, against hiding 10 % chosen at random. A map
  that points at what the model reads moves it far more than chance does.
"""

import time
from pathlib import Path

import numpy as np

from contracts.images import normalise
from contracts.runtime import ort_session
from contracts.xray import XRAY_FILE
from export.settings import ExportSettings
from export.xray.data import load_pneumoniamnist
from loadtest.machine import command_line, machine_facts
from orchestrator.services.heatmap import importance, occlusions

CHOICES = ((3, 1), (4, 2), (6, 2), (8, 4), (10, 3), (14, 7))
HIDDEN_SHARE = 0.10


def run(repository: Path, images: int, seed: int = 5) -> dict:
    session = ort_session(repository / XRAY_FILE)
    test = load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)["test"].head(images)
    inputs = normalise(test.images)
    rng = np.random.default_rng(seed)

    def probabilities(batch: np.ndarray) -> np.ndarray:
        return session.run(["probability"], {"image": batch})[0].reshape(-1)

    results = {}
    for patch, stride in CHOICES:
        seconds, drops, random_drops = [], [], []
        for pixels in inputs:
            started = time.perf_counter()
            occluded = occlusions(pixels, patch, stride)
            scored = probabilities(occluded.pixels)
            pneumonia = bool(scored[0] >= 0.5)
            heat = importance(scored, occluded.masks, pneumonia)
            seconds.append(time.perf_counter() - started)
            drops.append(_deletion(probabilities, pixels, heat.reshape(-1), pneumonia, scored[0]))
            noise = rng.random(heat.size)
            random_drops.append(_deletion(probabilities, pixels, noise, pneumonia, scored[0]))
        results[f"patch_{patch}_stride_{stride}"] = {
            "copies_scored": len(occluded.masks) + 1,
            "ms_per_heatmap_median": round(1000 * float(np.median(seconds)), 2),
            "deletion_drop_mean": round(float(np.mean(drops)), 4),
            "random_deletion_drop_mean": round(float(np.mean(random_drops)), 4),
        }
    return {
        "benchmark": "xray-heatmap",
        "command": command_line(),
        "machine": machine_facts(),
        "images": images,
        "hidden_share": HIDDEN_SHARE,
        "choices": results,
    }


def _deletion(probabilities, pixels, ranking, pneumonia: bool, base: float) -> float:
    """How far hiding the top HIDDEN_SHARE of `ranking` moves the probability from the answer."""
    hidden = np.argsort(-ranking)[: int(HIDDEN_SHARE * ranking.size)]
    copy = pixels.copy().reshape(-1)
    copy[hidden] = 0.0
    moved = probabilities(copy.reshape(1, *pixels.shape))[0]
    return float(base - moved) if pneumonia else float(moved - base)
