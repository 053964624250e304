"""How a process on this machine runs its models: the cores it may use, an ONNX Runtime session.

Export (parity checks, the bench's in-process ceiling), the benchmark's plain FastAPI peer and
the local server's Python-based `onnxruntime` backend run ONNX files the same way, so that
their figures compare. Imports of onnxruntime stay inside the function: the orchestrator
imports `contracts` and does not install it.
"""

import os
from pathlib import Path


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), not the
    machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def ort_session(path: Path | str, intra_op_threads: int | None = None, inter_op_threads: int = 1):
    """An `onnxruntime.InferenceSession` on the CPU provider; intra-op threads default to the
    usable cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or usable_cores()
    options.inter_op_num_threads = inter_op_threads
    try:  # the tokenizer operator of the fused ticket_intent (export/fuse.py)
        from onnxruntime_extensions import get_library_path
    except ImportError:  # files without it still run; one with it fails naming the operator
        pass
    else:
        options.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
