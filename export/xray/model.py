"""The classifier: a small VGG-style CNN for 28 x 28 grey images, one logit for pneumonia."""

import torch
from torch import nn


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class XrayNet(nn.Module):
    """28 → 14 → 7 pixels in three stages of two 3x3 convolutions, then global average pooling."""

    def __init__(self, width: int = 32, dropout: float = 0.3):
        super().__init__()
        self.features = nn.Sequential(
            _block(1, width),
            nn.MaxPool2d(2),
            _block(width, 2 * width),
            nn.MaxPool2d(2),
            _block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: normalised float [B, 1, 28, 28] → the pneumonia logit [B, 1]."""
        return self.head(self.features(image))
