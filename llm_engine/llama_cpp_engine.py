"""llama.cpp engine: one context, one sequence id per running request, one `llama_decode` per step.

All running requests share the context's unified KV cache; each is its own sequence (its
slot number), and its cells are removed when it ends. The scheduler keeps the prompts of
finished requests under further sequence ids (`max_slots` counts them too), tagging the same
cells rather than copying them. A step's tokens (prefill chunks and one
decode token per running sequence) go into a single batch, so the weights are read once for
all of them: that is where throughput under load comes from on a CPU.
"""

import ctypes
from pathlib import Path

import llama_cpp as lc
import numpy as np

from contracts.runtime import usable_cores
from llm_engine.chat import render_chat_template
from llm_engine.config import DEFAULTS
from llm_engine.engine import StepItem
from llm_engine.packaged import packaged_gguf


class LlamaCppEngine:
    name = "llama_cpp"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        max_slots: int = DEFAULTS.max_active_sequences,
        context_size: int = DEFAULTS.context_size,
        step_tokens: int = DEFAULTS.step_tokens,
        threads: int = DEFAULTS.threads,
    ):
        self.model_path = Path(model_path) if model_path else packaged_gguf()
        threads = threads or usable_cores()
        lc.llama_backend_init()
        model_params = lc.llama_model_default_params()
        self._model = lc.llama_model_load_from_file(str(self.model_path).encode(), model_params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {self.model_path}")
        params = lc.llama_context_default_params()
        params.n_ctx = context_size
        params.n_batch = step_tokens
        params.n_ubatch = step_tokens
        params.n_seq_max = max_slots
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = True  # every sequence draws cells from the one shared cache
        self._ctx = lc.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self._vocab = lc.llama_model_get_vocab(self._model)
        self._memory = lc.llama_get_memory(self._ctx)
        self.n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self.max_slots = max_slots
        self.step_tokens = step_tokens
        self.threads = threads
        self.kv_capacity = lc.llama_n_ctx(self._ctx)
        self.context_length = min(self.kv_capacity, lc.llama_model_n_ctx_train(self._model))
        self.eos_token_ids = frozenset(
            t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(self._vocab, t)
        )
        self._batch = lc.llama_batch_init(step_tokens, 0, 1)
        self._pieces: dict[int, bytes] = {}
        template = lc.llama_model_chat_template(self._model, None)
        self._chat_template = template.decode() if template else None

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        capacity = len(data) + 16
        buffer = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self._vocab, data, len(data), buffer, capacity, True, True)
        if n < 0:  # the buffer was too small: -n tokens are needed
            buffer = (lc.llama_token * -n)()
            n = lc.llama_tokenize(self._vocab, data, len(data), buffer, -n, True, True)
        return list(buffer[:n])

    def token_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(64)
            n = lc.llama_token_to_piece(self._vocab, token, buffer, 64, 0, False)
            if n < 0:
                buffer = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self._vocab, token, buffer, -n, 0, False)
            piece = self._pieces[token] = buffer.raw[:n]
        return piece

    def render_chat(self, messages: list[dict]) -> str:
        if self._chat_template is None:
            raise ValueError(f"{self.model_path.name} has no chat template")
        return render_chat_template(self._chat_template, messages)

    def forward(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        total = sum(len(item.tokens) for item in items)
        if total > self.step_tokens:
            raise ValueError(f"a step of {total} tokens exceeds the batch of {self.step_tokens}")
        batch, index, wanted = self._batch, 0, {}
        for item in items:
            for offset, token in enumerate(item.tokens):
                batch.token[index] = token
                batch.pos[index] = item.start + offset
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = item.slot
                last = offset == len(item.tokens) - 1
                batch.logits[index] = item.want_logits and last
                if item.want_logits and last:
                    wanted[item.slot] = index
                index += 1
        batch.n_tokens = total
        status = lc.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        return {
            slot: np.ctypeslib.as_array(
                lc.llama_get_logits_ith(self._ctx, i), shape=(self.n_vocab,)
            ).copy()
            for slot, i in wanted.items()
        }

    def share_prefix(self, source: int, target: int, length: int) -> None:
        # In the unified cache this tags the source's cells with the target's sequence id
        # too: nothing is copied, and the cells live on until both sequences drop them.
        lc.llama_memory_seq_cp(self._memory, source, target, 0, length)

    def release(self, slot: int) -> None:
        lc.llama_memory_seq_rm(self._memory, slot, -1, -1)

    def close(self) -> None:
        if self._ctx:
            lc.llama_batch_free(self._batch)
            lc.llama_free(self._ctx)
            lc.llama_model_free(self._model)
            self._ctx = self._model = None
