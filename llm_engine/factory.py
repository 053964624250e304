"""Build the engine an `LLMConfig` asks for."""

from pathlib import Path

from llm_engine.config import LLMConfig


def serving_path(config: LLMConfig) -> Path:
    """The GGUF a llama.cpp engine of `config` serves (the benchmark's peers load it too)."""
    from llm_engine.gguf import serving_gguf
    from llm_engine.packaged import packaged_gguf

    source = Path(config.model_path) if config.model_path else packaged_gguf()
    return serving_gguf(source, config.quantization, config.cache_dir)


def create_engine(config: LLMConfig):
    """An engine with a sequence id for each running sequence and each cached prefix."""
    path = Path(config.model_path) if config.model_path else None
    slots = config.max_active_sequences + config.prefix_cache_entries
    if config.engine == "llama_cpp":
        from llm_engine.llama_cpp_engine import LlamaCppEngine

        return LlamaCppEngine(
            serving_path(config),
            max_slots=slots,
            context_size=config.context_size,
            step_tokens=config.step_tokens,
            threads=config.threads,
        )
    if config.engine == "transformers":
        from llm_engine.transformers_engine import TransformersEngine

        if path is None:
            raise ValueError(
                "the transformers engine needs model_path: a Hugging Face model folder"
            )
        return TransformersEngine(path, max_slots=slots, context_size=config.context_size)
    raise ValueError(f"unknown engine {config.engine!r}; use llama_cpp or transformers")
