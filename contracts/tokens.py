"""How ticket text becomes the encoder's input, identical in export and in Triton.

The export's training and parity check, Triton's `ticket_tokenizer` model and the benchmark's
plain FastAPI peer all tokenize with the encoder's own tokenizer.json, truncate at a maximum
length, and pad a batch themselves: ids and mask are int64, padded with 0 on the right. The
packaged tokenizer.json would pad every text to 128 tokens; left that way a short ticket
costs about three times as much, so its padding is switched off and each caller chooses a
width (the longest text of a batch, or a length bucket).

`ticket_tokenizer` imports this inside Triton's Python: the local launcher runs the project's
virtual environment, and the Triton image copies `contracts/` into its environment.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class BadText(ValueError):
    """A text a triage model refuses; its message goes back to the client."""


def checked_texts(values: Sequence, max_bytes: int) -> list[str]:
    """Each value (bytes, or str) as UTF-8 text without surrounding blanks; BadText names the
    first one that is longer than `max_bytes`, not UTF-8, or empty. ticket_tokenizer and the
    fused ticket_intent (through the local onnxruntime backend) answer alike."""
    texts = []
    for position, value in enumerate(values):
        data = value if isinstance(value, bytes) else str(value).encode()
        if len(data) > max_bytes:
            raise BadText(f"text[{position}] is {len(data)} bytes; the limit is {max_bytes}")
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise BadText(f"text[{position}] is not valid UTF-8: {error.reason}") from None
        if not text:
            raise BadText(f"text[{position}] is empty")
        texts.append(text)
    return texts


def load_tokenizer(path: Path | str, max_length: int):
    """A `tokenizers.Tokenizer` from `path` (a tokenizer.json), truncating, not padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def pad_batch(
    rows: Sequence[Sequence[int]], width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """int64 token ids and attention mask of shape [len(rows), width], padded with 0.

    `width` defaults to the longest row; a row longer than `width` is an error, not cut.
    """
    width = max(len(row) for row in rows) if width is None else width
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) > width:
            raise ValueError(f"row {i} holds {len(row)} tokens, more than the width {width}")
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def encode_batch(tokenizer, texts: Sequence[str], width: int | None = None):
    """Tokenize `texts` together and pad them (see `pad_batch`)."""
    return pad_batch([e.ids for e in tokenizer.encode_batch(list(texts))], width)
