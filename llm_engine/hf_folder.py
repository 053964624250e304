"""Make a Hugging Face model folder from a GGUF file, offline (via the `gguf` package)."""

from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_engine.packaged import packaged_gguf


def folder_from_gguf(target: Path, gguf: Path | None = None) -> Path:
    gguf = gguf or packaged_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)  # nosec B615  # the packaged GGUF's own folder, not the Hub
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)  # nosec B615  # the packaged GGUF's own folder, not the Hub
    # The weights arrive dequantized, but the model still says "gguf-quantized" and refuses
    # to save; a plain model of the same config takes them over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(target))
    model.save_pretrained(str(target))
    return target
