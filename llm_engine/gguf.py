"""The GGUF the llama.cpp engine serves: the packaged file, re-encoded once for fast CPU kernels.

The packaged SmolLM2 file is Q4_1, a type llama.cpp's CPU backend multiplies with its generic
dot products only: on this 2-core machine a batch of prompt tokens ran at about 240-310
tokens/s. Q8_0 has the tiled matrix kernels (llamafile's sgemm), and the same steps ran at
660-730 tokens/s, with 1.6-1.8x the tokens/s at 16 streams (scratch measurement, README "The
LLM"). Re-encoding Q4_1 as Q8_0 adds almost no error (each 4-bit value with its block's offset
is rounded once more, to one of 255 levels), so the answers are the packaged model's.

The re-encoded file is written once per source file into a cache folder (`cache_dir`, by
default the system's temporary folder), under a name made of the source's name, size and
modification time, atomically: Triton's two llm models may load at once. Re-encoding takes
about a second on 2 cores.
"""

import os
import tempfile
from pathlib import Path

# The llama.cpp file types a config may ask for ("" keeps the file as it is).
FILE_TYPES = ("Q8_0", "Q4_0", "Q4_1", "F16")


def serving_gguf(source: Path, quantization: str, cache_dir: str | Path = "") -> Path:
    """`source` itself, or its copy re-encoded as `quantization`, made on first use."""
    if not quantization:
        return source
    if quantization not in FILE_TYPES:
        raise ValueError(f"quantization must be one of {FILE_TYPES} or empty, not {quantization!r}")
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "support-llm-gguf"
    stat = source.stat()
    target = folder / f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}.{quantization}.gguf"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            _requantize(source, partial, quantization)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def _requantize(source: Path, target: Path, quantization: str) -> None:
    import llama_cpp as lc

    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{quantization}")
    params.allow_requantize = True  # the source is already quantized
    params.nthread = os.cpu_count() or 1
    status = lc.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    if status != 0:
        raise RuntimeError(f"llama.cpp could not re-encode {source.name} as {quantization}")
