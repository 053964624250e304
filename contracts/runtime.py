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


class ProviderUnavailable(RuntimeError):
    """An execution provider asked for is not in this onnxruntime build (e.g. CUDA without
    onnxruntime-gpu)."""


def gpu_providers(accelerator: str = "cuda", device_id: int = 0, cache_dir: str = "") -> list:
    """ONNX Runtime's providers for a model on GPU `device_id`, in order of preference:
    TensorRT in fp16 (engines cached in `cache_dir`) when `accelerator` is "tensorrt", CUDA,
    and the CPU for the operators neither runs (the tokenizer's)."""
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    providers = [cuda, "CPUExecutionProvider"]
    if accelerator == "tensorrt":
        options = {"device_id": device_id, "trt_fp16_enable": True}
        if cache_dir:
            options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache_dir}
        providers.insert(0, ("TensorrtExecutionProvider", options))
    return providers


def instance_providers(config: dict, kind: str, device_id: int = 0) -> list | None:
    """The providers a Triton model instance asks for: None on the CPU; on a GPU, CUDA, or
    TensorRT where the config lists it among its GPU execution accelerators (the lines
    export/device.py writes, as NGC's onnxruntime backend reads them)."""
    if kind != "GPU":
        return None
    optimization = config.get("optimization", {}).get("execution_accelerators", {})
    for accelerator in optimization.get("gpu_execution_accelerator", []):
        if accelerator.get("name") == "tensorrt":
            cache = accelerator.get("parameters", {}).get("trt_engine_cache_path", "")
            return gpu_providers("tensorrt", device_id, cache)
    return gpu_providers("cuda", device_id)


def missing_providers(providers: list) -> list[str]:
    """The names among `providers` (names, or (name, options) pairs) that this build of
    onnxruntime lacks."""
    import onnxruntime as ort

    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    return [n for n in names if n not in ort.get_available_providers()]


def ort_session(
    path: Path | str,
    intra_op_threads: int | None = None,
    inter_op_threads: int = 1,
    providers: list | None = None,
):
    """An `onnxruntime.InferenceSession` on the CPU provider, or on `providers`
    (gpu_providers); intra-op threads default to the usable cores. A provider this build of
    onnxruntime lacks raises ProviderUnavailable rather than running quietly on the CPU."""
    import onnxruntime as ort

    providers = providers or ["CPUExecutionProvider"]
    missing = missing_providers(providers)
    if missing:
        raise ProviderUnavailable(
            f"onnxruntime {ort.__version__} has no {', '.join(missing)} (it has "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu on a GPU host"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or usable_cores()
    options.inter_op_num_threads = inter_op_threads
    try:  # the tokenizer operator of the fused ticket_intent (export/fuse.py)
        from onnxruntime_extensions import get_library_path
    except ImportError:  # files without it still run; one with it fails naming the operator
        pass
    else:
        options.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(str(path), options, providers=providers)
