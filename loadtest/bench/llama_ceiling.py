"""The LLM bench's ceiling: llama.cpp's own multi-sequence batch decode, in this process.

N prompts become N sequences of one llama.cpp context, loaded from the same GGUF with the
same threads and a unified KV cache, as the `llm` model's. Through llama-cpp-python's
low-level API only (not the project's engine or scheduler):

1. the prompts' common token prefix (the system prompt) is decoded once, as sequence 0, and
   shared with every other sequence (`llama_memory_seq_cp`), as llama.cpp's `parallel`
   example does with its system prompt;
2. the rest of every prompt is decoded in as few batches as the batch size allows, the
   logits of each prompt's last token kept: its argmax is that sequence's first token;
3. each decode then carries exactly one token per sequence, greedy (argmax), end of sequence
   ignored, until every sequence has `max_tokens`.

Prompts are tokenized before the clock starts and no text is decoded: nothing runs but
llama.cpp and an argmax, so no server can do the same work faster on the same machine.
"""

import ctypes
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import llama_cpp as lc
import numpy as np

from llm_engine.chat import render_chat_template
from llm_engine.config import DEFAULTS
from llm_engine.factory import serving_path

# As in the `llm` model's scheduler: a shorter common prefix is not worth a copy.
MIN_SHARED_PREFIX = 8


@dataclass
class Decoded:
    """One sequence: its prompt's length, the tokens generated, and when each was ready."""

    prompt_tokens: int
    tokens: list[int]
    arrivals: list[float]


@dataclass
class CeilingRun:
    started: float
    sequences: list[Decoded]


def common_prefix(prompts: list[list[int]]) -> int:
    """The number of leading tokens every prompt shares, leaving each at least one of its own
    (its last token's logits give its first generated token)."""
    limit = min(len(p) for p in prompts) - 1
    for i in range(max(limit, 0)):
        if any(p[i] != prompts[0][i] for p in prompts[1:]):
            return i
    return max(limit, 0)


def cells_needed(prompts: list[list[int]], max_tokens: int) -> int:
    """KV cells the run takes: the shared prefix once, then each sequence's own tokens."""
    shared = common_prefix(prompts) if len(prompts) > 1 else 0
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    return shared + sum(len(p) - shared + max_tokens for p in prompts)


class LlamaCeiling:
    """One model and one context; `run` may be called again (the cache is cleared first)."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        threads: int,
        max_sequences: int = 16,
        context_size: int = 8192,
        batch_tokens: int = 512,
    ):
        # By default the file the `llm` model serves (its default LLMConfig): equal work.
        self.model_path = Path(model_path) if model_path else serving_path(DEFAULTS)
        lc.llama_backend_init()
        self._model = lc.llama_model_load_from_file(
            str(self.model_path).encode(), lc.llama_model_default_params()
        )
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {self.model_path}")
        params = lc.llama_context_default_params()
        params.n_ctx = context_size
        params.n_batch = params.n_ubatch = batch_tokens
        params.n_seq_max = max_sequences
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True
        self._ctx = lc.llama_init_from_model(self._model, params)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise RuntimeError("llama.cpp could not create a context")
        self._vocab = lc.llama_model_get_vocab(self._model)
        self._memory = lc.llama_get_memory(self._ctx)
        self.n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self.max_sequences = max_sequences
        self.context_size = lc.llama_n_ctx(self._ctx)
        self.batch_tokens = batch_tokens
        self.threads = threads
        self._batch = lc.llama_batch_init(batch_tokens, 0, 1)
        template = lc.llama_model_chat_template(self._model, None)
        self.chat_template = template.decode() if template else None

    def __enter__(self) -> "LlamaCeiling":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def render(self, messages: list[dict]) -> str:
        """The prompt text exactly as the `llm` model renders it (the GGUF's own template)."""
        if self.chat_template is None:
            raise ValueError(f"{self.model_path.name} has no chat template")
        return render_chat_template(self.chat_template, messages)

    def tokenize(self, text: str) -> list[int]:
        """As the `llm` model tokenizes: special tokens added and parsed."""
        data = text.encode()
        capacity = len(data) + 16
        buffer = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self._vocab, data, len(data), buffer, capacity, True, True)
        if n < 0:
            buffer = (lc.llama_token * -n)()
            n = lc.llama_tokenize(self._vocab, data, len(data), buffer, -n, True, True)
        return list(buffer[:n])

    def ends_generation(self, token: int) -> bool:
        """An end-of-sequence token: where the model would stop, were EOS not ignored."""
        return bool(lc.llama_vocab_is_eog(self._vocab, token))

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) entries."""
        batch = self._batch
        for i, (token, position, sequence, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = sequence
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        status = lc.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")

    def _argmax_ith(self, i: int) -> int:
        row = lc.llama_get_logits_ith(self._ctx, i)
        return int(np.ctypeslib.as_array(row, shape=(self.n_vocab,)).argmax())

    def run(self, prompts: list[list[int]], max_tokens: int) -> CeilingRun:
        """Decode every prompt to exactly `max_tokens` greedy tokens, all together."""
        n = len(prompts)
        if not 1 <= n <= self.max_sequences:
            raise ValueError(f"{n} prompts: this context holds 1 to {self.max_sequences}")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if cells_needed(prompts, max_tokens) > self.context_size:
            raise ValueError(
                f"{cells_needed(prompts, max_tokens)} KV cells needed, {self.context_size} held"
            )
        lc.llama_memory_clear(self._memory, True)
        shared = common_prefix(prompts) if n > 1 else 0
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        sequences = [Decoded(len(p), [], []) for p in prompts]
        started = perf_counter()

        # 1. The shared prefix once, as sequence 0, then tagged as every sequence's too.
        prefix = [(t, pos, 0, False) for pos, t in enumerate(prompts[0][:shared])]
        for start in range(0, len(prefix), self.batch_tokens):
            self._decode(prefix[start : start + self.batch_tokens])
        for s in range(1, n):
            lc.llama_memory_seq_cp(self._memory, 0, s, 0, shared)

        # 2. Each prompt's own tokens, packed into full batches; a prompt's last token's
        # logits give its first token as soon as the batch holding it is decoded.
        rest = [
            (t, pos, s, pos == len(p) - 1)
            for s, p in enumerate(prompts)
            for pos, t in enumerate(p[shared:], start=shared)
        ]
        for start in range(0, len(rest), self.batch_tokens):
            chunk = rest[start : start + self.batch_tokens]
            self._decode(chunk)
            now = perf_counter()
            for i, (_, _, s, last) in enumerate(chunk):
                if last:
                    sequences[s].tokens.append(self._argmax_ith(i))
                    sequences[s].arrivals.append(now)

        # 3. One token per sequence per decode, all sequences in each.
        for _ in range(max_tokens - 1):
            self._decode(
                [(d.tokens[-1], d.prompt_tokens + len(d.tokens) - 1, s, True)
                 for s, d in enumerate(sequences)]
            )  # fmt: skip
            logits = lc.llama_get_logits(self._ctx)
            rows = np.ctypeslib.as_array(
                ctypes.cast(logits, ctypes.POINTER(ctypes.c_float)), shape=(n, self.n_vocab)
            )
            chosen = rows.argmax(axis=1)
            now = perf_counter()
            for d, token in zip(sequences, chosen, strict=True):
                d.tokens.append(int(token))
                d.arrivals.append(now)
        return CeilingRun(started, sequences)

    def close(self) -> None:
        if self._ctx:
            lc.llama_batch_free(self._batch)
            lc.llama_free(self._ctx)
            lc.llama_model_free(self._model)
            self._ctx = self._model = None
