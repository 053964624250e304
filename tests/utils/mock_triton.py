"""A real Triton serving the mock LLM (tests/models/mock_llm) under the `llm` model's name
(and, for the failover tests, under `llm_fallback`'s too).

Triton from the wheel starts in about ten seconds with one Python model and no ONNX files,
so the chat path (gRPC streaming, SSE, errors mid-stream, timeouts) is tested in the fast
lane against the real server and the real client code; only the model's text is fake. The
mock is served with the committed `llm` config.pbtxt, so it takes exactly the real model's
tensors and the orchestrator cannot tell the two apart.
"""

import json
import shutil
from pathlib import Path

from contracts import PROJECT_ROOT
from contracts.models import LLM_MODEL
from orchestrator.settings import TritonSettings
from tests.utils.ports import loopback_triton

MOCK_LLM = Path(__file__).parents[1] / "models" / "mock_llm"


def mock_repository(target: Path, models: tuple[str, ...] = (LLM_MODEL,)) -> Path:
    """`target/<model>` per model (`llm`, `llm_fallback`): its committed config with the
    mock's model.py as version 1."""
    for name in models:
        model = target / name
        (model / "1").mkdir(parents=True)
        shutil.copy2(PROJECT_ROOT / "model_repository" / name / "config.pbtxt", model)
        shutil.copy2(MOCK_LLM / "1" / "model.py", model / "1" / "model.py")
    return target


def mock_triton_settings(work: Path, models: tuple[str, ...] = (LLM_MODEL,)) -> TritonSettings:
    return loopback_triton(mock_repository(work / "repository", models), work, models=models)


def mock_directive(reply: str, **options) -> str:
    """A message content that tells the mock what to answer and how (see its model.py)."""
    return json.dumps({"mock": options, "reply": reply})
