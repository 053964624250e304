"""Build the engine a model config asks for."""

from pathlib import Path


def create_engine(params: dict[str, str]):
    """`params` are the llm model's config parameters (strings, as Triton gives them)."""
    name = params.get("engine", "llama_cpp")
    path = Path(params["model_path"]) if params.get("model_path") else None
    max_slots = int(params.get("max_active_sequences", "16"))
    if name == "llama_cpp":
        from llm_engine.llama_cpp_engine import LlamaCppEngine

        return LlamaCppEngine(
            path,
            max_slots=max_slots,
            context_size=int(params.get("context_size", "8192")),
            step_tokens=int(params.get("step_tokens", "256")),
            threads=int(params.get("threads", "0")),
        )
    if name == "transformers":
        from llm_engine.transformers_engine import TransformersEngine

        if path is None:
            raise ValueError(
                "the transformers engine needs model_path: a Hugging Face model folder"
            )
        return TransformersEngine(
            path, max_slots=max_slots, context_size=int(params.get("context_size", "8192"))
        )
    raise ValueError(f"unknown engine {name!r}; use llama_cpp or transformers")
