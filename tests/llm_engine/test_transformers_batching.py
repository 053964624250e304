"""The transformers engine's one padded pass per step against one pass per item, on tiny
randomly initialised models built here (no download): same logits, one model call per step.

Two models: a Llama, and a Mistral whose sliding window (4) is shorter than the sequences, so
that padding in the wrong place would move tokens in or out of the window."""

import time

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

from llm_engine.engine import StepItem
from llm_engine.transformers_engine import TransformersEngine

VOCAB = 257  # the 256 bytes and an end-of-text token
TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["llama", "mistral-sliding"])
def tiny_folder(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {char: i for i, char in enumerate(sorted(alphabet))} | {"<|endoftext|>": 256}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>").save_pretrained(
        folder
    )
    shape = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # large enough that logits depend visibly on the context
        eos_token_id=256,
        bos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(0)
    if request.param == "llama":
        LlamaForCausalLM(LlamaConfig(**shape)).save_pretrained(folder)
    else:
        MistralForCausalLM(MistralConfig(**shape, sliding_window=4)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def engines(tiny_folder):
    """Two engines on the same weights: one batches, the other is driven per item."""
    return (
        TransformersEngine(tiny_folder, max_slots=8, context_size=256),
        TransformersEngine(tiny_folder, max_slots=8, context_size=256),
    )


def count_calls(engine) -> list[int]:
    calls: list[int] = []
    engine.model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def cached_length(engine, slot: int) -> int:
    return {keys.shape[1] for keys, _ in engine._caches[slot]}.pop()


def tokens(seed: int, n: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, VOCAB - 1, n).tolist()


def assert_same(batched: dict, each: dict) -> None:
    assert batched.keys() == each.keys()
    for slot in each:
        np.testing.assert_allclose(batched[slot], each[slot], atol=TOLERANCE, rtol=0)


class Driver:
    """Runs the same steps on both engines and checks their logits agree."""

    def __init__(self, engines):
        self.batched, self.each = engines
        for engine in engines:
            for slot in range(8):
                engine.release(slot)
        self.calls = count_calls(self.batched)
        self.history: dict[int, list[int]] = {}

    def step(self, items: list[StepItem]) -> dict[int, np.ndarray]:
        before = len(self.calls)
        out = self.batched.forward(items)
        assert len(self.calls) - before == 1  # the whole step in one model call
        assert_same(out, self.each.forward_each(items))
        for item in items:
            assert len(self.history.setdefault(item.slot, [])) == item.start
            self.history[item.slot] += item.tokens
            for engine in (self.batched, self.each):  # no padding left in the caches
                assert cached_length(engine, item.slot) == len(self.history[item.slot])
        return out

    def decode(self, slot: int, out: dict) -> StepItem:
        return StepItem(slot, [int(np.argmax(out[slot]))], len(self.history[slot]), True)

    def from_scratch(self, slot: int) -> np.ndarray:
        """The last logits of the slot's whole history, computed without any cache."""
        with torch.inference_mode():
            ids = torch.tensor([self.history[slot]])
            return self.each.model(input_ids=ids, use_cache=False).logits[0, -1].numpy()


def test_a_mixed_step_matches_one_pass_per_item_over_several_steps(engines):
    run = Driver(engines)
    out = run.step([StepItem(0, tokens(0, 7), 0, True), StepItem(1, tokens(1, 12), 0, True)])
    # two decodes at different positions, a prefill chunk mid-prompt, a new sequence
    out |= run.step(
        [
            run.decode(0, out),
            run.decode(1, out),
            StepItem(2, tokens(2, 5), 0, False),
            StepItem(3, tokens(3, 3), 0, True),
        ]
    )
    assert 2 not in out
    out |= run.step(
        [
            run.decode(0, out),
            run.decode(1, out),
            StepItem(2, tokens(4, 4), 5, True),
            run.decode(3, out),
        ]
    )
    for _ in range(3):
        out |= run.step([run.decode(slot, out) for slot in (0, 1, 2, 3)])
    for slot in (0, 1, 2, 3):
        np.testing.assert_allclose(out[slot], run.from_scratch(slot), atol=TOLERANCE, rtol=0)
    # the model is sensitive enough for the tolerance to mean something
    assert np.abs(out[0] - out[1]).max() > 100 * TOLERANCE


def test_shared_prefix_and_released_slots_batch_correctly(engines):
    run = Driver(engines)
    out = run.step([StepItem(0, tokens(10, 9), 0, True), StepItem(1, tokens(11, 14), 0, True)])
    for engine in engines:
        engine.share_prefix(1, 4, 6)
        engine.release(0)
    run.history[4] = run.history[1][:6]
    del run.history[0]
    out |= run.step(
        [
            run.decode(1, out),
            StepItem(4, tokens(12, 3), 6, True),  # continues the shared prefix
            StepItem(0, tokens(13, 2), 0, True),  # a new sequence in a released slot
        ]
    )
    for _ in range(2):
        out |= run.step([run.decode(slot, out) for slot in (0, 1, 4)])
    for slot in (0, 1, 4):
        np.testing.assert_allclose(out[slot], run.from_scratch(slot), atol=TOLERANCE, rtol=0)


def test_an_item_starting_before_the_cached_end_continues_from_its_start(engines):
    run = Driver(engines)
    out = run.step([StepItem(0, tokens(20, 10), 0, True), StepItem(1, tokens(21, 4), 0, True)])
    run.history[0] = run.history[0][:6]  # the engines keep 10; the item says 6
    out |= run.step([StepItem(0, tokens(22, 2), 6, True), run.decode(1, out)])
    np.testing.assert_allclose(out[0], run.from_scratch(0), atol=TOLERANCE, rtol=0)


def test_decoding_eight_sequences_batched_versus_one_pass_each(engines):
    """A timing note, not a gate: printed (run with -s to see it); the median step, as the
    machine may be shared."""
    batched, each = engines
    sequences, steps = 8, 20
    timings = {}
    for name, engine, forward in (
        ("batched", batched, batched.forward),
        ("per item", each, each.forward_each),
    ):
        for slot in range(sequences):
            engine.release(slot)
        forward([StepItem(slot, tokens(30 + slot, 16 + slot), 0, False) for slot in range(8)])
        times = []
        for step in range(steps + 1):  # the first step warms up
            began = time.perf_counter()
            forward([StepItem(slot, [1], 16 + slot + step, True) for slot in range(sequences)])
            times.append(time.perf_counter() - began)
        timings[name] = float(np.median(times[1:]))
    print(
        f"\n{sequences} decode sequences, tiny model on CPU: "
        f"batched {timings['batched'] * 1e3:.2f} ms/step, "
        f"per item {timings['per item'] * 1e3:.2f} ms/step"
    )
