"""transformers engine: any Hugging Face causal-LM folder; CUDA with bf16/fp16 where present.

Each sequence keeps its own KV cache (one key and one value tensor per layer), and a step
runs all its items in one forward pass, so a GPU is used as one rather than once per
sequence. Row i of the batch is laid out as

    [ padding (P - past_i) | cached past_i | new tokens_i | padding (T - tokens_i) ]

where P is the longest cached past and T the longest item of the step. The past is padded on
the left, so that the distance between a new token and a cached one is the same as in the
sequence (sliding-window masks stay right); the new tokens are padded on the right, where
causality already hides the padding from every real token. A 2D attention mask drops the
padding, position ids give each row its own positions, and after the pass each slot keeps the
slice of the batched cache that is its own (views, not copies). Logits are projected only at
the positions some item wants.

This suits models whose cache is plain keys and values (Llama, Mistral, Qwen, SmolLM and the
like); `forward_each`, one pass per item, is the reference the tests compare it with.

Measured on CPU only, with a tiny random model (see tests/llm_engine/test_transformers_batching.py):
it has NOT run on a GPU yet; the code picks CUDA when torch sees one. (On CPU the llama.cpp
engine is the fast one; see the README's figures.)
"""

import inspect
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
        # slot -> per layer (keys, values), each [heads, length, head_dim]
        self._caches: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        parameters = inspect.signature(self.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in parameters
        # transformers 5 renames past_key_values to cache (the old name goes in 5.40)
        self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
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

    def _past(self, item: StepItem) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The slot's cache cut to `item.start` positions: the item continues from there."""
        layers = self._caches.get(item.slot, [])
        length = layers[0][0].shape[1] if layers else 0
        if length < item.start:
            raise ValueError(
                f"slot {item.slot} has {length} cached positions; the item starts at {item.start}"
            )
        if layers and length > item.start:
            layers = [(k[:, : item.start], v[:, : item.start]) for k, v in layers]
        return layers if item.start else []

    @staticmethod
    def _layers_of(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (keys, values), [batch, heads, length, head_dim], in 4.x or 5.x."""
        layers = []
        for entry in cache:
            keys, values = entry[0], entry[1]
            if not (isinstance(keys, torch.Tensor) and keys.ndim == 4):
                raise TypeError("this engine needs a model with a plain key/value cache")
            layers.append((keys, values))
        return layers

    @torch.inference_mode()
    def forward(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        """All items in one padded pass (see the module docstring for the layout)."""
        if not items:
            return {}
        pasts = [self._past(item) for item in items]
        lengths = [item.start for item in items]
        counts = [len(item.tokens) for item in items]
        rows, longest_past, longest_new = len(items), max(lengths), max(counts)
        width = longest_past + longest_new
        device = self.device

        ids = torch.zeros((rows, longest_new), dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        positions = torch.zeros((rows, longest_new), dtype=torch.long)
        for row, item in enumerate(items):
            n, past = counts[row], lengths[row]
            ids[row, :n] = torch.tensor(item.tokens)
            mask[row, longest_past - past : longest_past + n] = 1
            # padding tokens continue the row's positions; their outputs are never read
            positions[row] = torch.arange(past, past + longest_new)

        cache = DynamicCache()
        if longest_past:
            template = next(p for p in pasts if p)
            for layer, (k0, v0) in enumerate(template):
                keys = k0.new_zeros((rows, k0.shape[0], longest_past, k0.shape[2]))
                values = v0.new_zeros((rows, v0.shape[0], longest_past, v0.shape[2]))
                for row, past in enumerate(pasts):
                    if past:
                        keys[row, :, longest_past - lengths[row] :] = past[layer][0]
                        values[row, :, longest_past - lengths[row] :] = past[layer][1]
                cache.update(keys, values, layer)

        wanted = [row for row, item in enumerate(items) if item.want_logits]
        keep = sorted({counts[row] - 1 for row in wanted}) or [0]
        kwargs = {}
        if self._keeps_logits:
            kwargs["logits_to_keep"] = torch.tensor(keep, device=device)
        else:
            keep = list(range(longest_new))
        logits = self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **{self._cache_kwarg: cache},
            **kwargs,
        ).logits

        layers = self._layers_of(cache)
        for row, item in enumerate(items):
            own = slice(longest_past - lengths[row], longest_past + counts[row])
            self._caches[item.slot] = [(k[row, :, own], v[row, :, own]) for k, v in layers]
        return {
            items[row].slot: logits[row, keep.index(counts[row] - 1)].float().cpu().numpy()
            for row in wanted
        }

    @torch.inference_mode()
    def forward_each(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        """The reference: one unpadded pass per item, no mask, positions from the cache."""
        out = {}
        for item in items:
            cache = DynamicCache()
            for layer, (keys, values) in enumerate(self._past(item)):
                cache.update(keys[None], values[None], layer)
            ids = torch.tensor([item.tokens], device=self.device)
            logits = self.model(input_ids=ids, use_cache=True, **{self._cache_kwarg: cache}).logits
            self._caches[item.slot] = [(k[0], v[0]) for k, v in self._layers_of(cache)]
            if item.want_logits:
                out[item.slot] = logits[0, -1].float().cpu().numpy()
        return out

    def share_prefix(self, source: int, target: int, length: int) -> None:
        # Slices of the source's tensors: a step never writes into a cache, it makes new ones.
        self._caches[target] = [(k[:, :length], v[:, :length]) for k, v in self._caches[source]]

    def release(self, slot: int) -> None:
        self._caches.pop(slot, None)
