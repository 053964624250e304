"""transformers engine: any Hugging Face causal-LM folder; CUDA with bf16/fp16 where present.

Each sequence keeps its own KV cache (a shared or cached prefix is a copy), and a step runs
its items one after another: correct for every architecture, and enough for the GPU path and
functional parity on CPU. (On CPU the llama.cpp engine is the fast one; see the README's
figures.)
"""

import copy
from functools import cache
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from llm_engine.chat import render_chat_template
from llm_engine.config import DEFAULTS
from llm_engine.engine import StepItem


@cache
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def pick_device_and_dtype() -> tuple[torch.device, torch.dtype]:
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    return torch.device("cpu"), torch.float32


class TransformersEngine:
    name = "transformers"

    def __init__(
        self,
        folder: Path,
        *,
        max_slots: int = DEFAULTS.max_active_sequences,
        context_size: int = DEFAULTS.context_size,
    ):
        self.device, self.dtype = pick_device_and_dtype()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))  # nosec B615  # a local model folder, not the Hub
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=self.dtype)  # nosec B615  # a local model folder, not the Hub
        self.model.to(self.device).eval()
        trained = getattr(self.model.config, "max_position_embeddings", context_size)
        self.context_length = min(context_size, trained)
        self.kv_capacity = self.context_length * max_slots  # caches are per sequence
        self.max_slots = max_slots
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_token_ids = frozenset(
            t for t in [*eos, self.tokenizer.eos_token_id] if t is not None
        )
        self._caches: dict[int, DynamicCache] = {}
        sample = self.tokenizer.convert_ids_to_tokens(
            self.tokenizer.encode(" héllo", add_special_tokens=False)
        )
        self._byte_level = all(c in _unicode_to_byte() for token in sample for c in token)
        self._pieces: dict[int, bytes] = {}

    def tokenize(self, text: str) -> list[int]:
        bos = self.tokenizer.bos_token
        add_special = not (bos and text.startswith(bos))
        return self.tokenizer.encode(text, add_special_tokens=add_special)

    def token_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._token_bytes(token)
        return piece

    def _token_bytes(self, token: int) -> bytes:
        text = self.tokenizer.convert_ids_to_tokens(token)
        if self._byte_level:
            table = _unicode_to_byte()
            return bytes(table[c] for c in text) if all(c in table for c in text) else text.encode()
        if text.startswith("<0x") and text.endswith(">") and len(text) == 6:  # sentencepiece byte
            return bytes([int(text[3:5], 16)])
        return text.replace("\u2581", " ").encode()

    def render_chat(self, messages: list[dict]) -> str:
        template = self.tokenizer.chat_template
        if not template:
            raise ValueError("this model folder has no chat template")
        return render_chat_template(template, messages)

    @torch.inference_mode()
    def forward(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        out = {}
        for item in items:
            cache = self._caches.setdefault(item.slot, DynamicCache())
            ids = torch.tensor([item.tokens], device=self.device)
            logits = self.model(input_ids=ids, past_key_values=cache, use_cache=True).logits
            if item.want_logits:
                out[item.slot] = logits[0, -1].float().cpu().numpy()
        return out

    def share_prefix(self, source: int, target: int, length: int) -> None:
        cache = copy.deepcopy(self._caches[source])
        surplus = cache.get_seq_length() - length
        if surplus > 0:
            cache.crop(-surplus)  # transformers 5: a negative count of tokens to drop
        self._caches[target] = cache

    def release(self, slot: int) -> None:
        self._caches.pop(slot, None)
