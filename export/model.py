"""The triage model in PyTorch: the MiniLM-L6 encoder, mean pooling and a linear intent head."""

from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import AutoModel

from contracts import tokens
from export.packaged import encoder_dir

EMBEDDING_DIM = 384


def load_tokenizer(max_length: int) -> Tokenizer:
    """The encoder's tokenizer, truncating at `max_length`, not padding (contracts.tokens)."""
    return tokens.load_tokenizer(encoder_dir() / "tokenizer.json", max_length)


def batch_encode(tokenizer: Tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded to the longest text of the batch."""
    ids, mask = tokens.encode_batch(tokenizer, texts)
    return torch.from_numpy(ids), torch.from_numpy(mask)


class MeanPoolingEncoder(nn.Module):
    """Transformer encoder followed by attention-masked mean pooling: text → one vector."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return summed / counts


class IntentModel(nn.Module):
    """Encoder plus linear head; the two halves are exported as separate ONNX files."""

    def __init__(self, num_intents: int):
        super().__init__()
        self.encoder = MeanPoolingEncoder(AutoModel.from_pretrained(str(encoder_dir())))  # nosec B615  # a local folder (the packaged encoder), never a Hub download
        self.head = nn.Linear(EMBEDDING_DIM, num_intents)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(input_ids, attention_mask))


def save_checkpoint(model: IntentModel, intents: list[str], max_length: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": model.state_dict(), "intents": intents, "max_length": max_length}, path
    )


def load_checkpoint(path: Path) -> tuple[IntentModel, list[str], int]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = IntentModel(len(saved["intents"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved["intents"], saved["max_length"]
