"""PneumoniaMNIST, read where it lies (`EXPORT_PNEUMONIAMNIST_DIR`), never copied."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.xray import SIZE

FILE = "pneumoniamnist.npz"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageSplit:
    images: np.ndarray  # uint8 [N, SIZE, SIZE]
    labels: np.ndarray  # int64 [N], 0 normal, 1 pneumonia

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "ImageSplit":
        """The first n images (all with None), for fast test builds."""
        return self if n is None else ImageSplit(self.images[:n], self.labels[:n])


def load_pneumoniamnist(folder: Path) -> dict[str, ImageSplit]:
    path = folder / FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: PneumoniaMNIST is read in place (set EXPORT_PNEUMONIAMNIST_DIR)"
        )
    with np.load(path) as arrays:
        splits = {
            name: ImageSplit(
                arrays[f"{name}_images"].astype(np.uint8),
                arrays[f"{name}_labels"].reshape(-1).astype(np.int64),
            )
            for name in SPLITS
        }
    for name, split in splits.items():
        if split.images.shape[1:] != (SIZE, SIZE):
            raise ValueError(
                f"{path}: {name} images are {split.images.shape[1:]}, not {SIZE}x{SIZE}"
            )
    return splits
