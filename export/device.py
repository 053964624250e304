"""Where the ONNX models run: the CPU, or a GPU through CUDA or TensorRT (fp16).

`python -m export device gpu --accelerator tensorrt` rewrites the configs of every model on the
`onnxruntime` backend in a repository (`config.pbtxt` and each `configs/*.pbtxt`, so the
versions `export publish` serves follow): its instances become `KIND_GPU`, and with TensorRT
the backend builds fp16 engines for the parts of the graph TensorRT runs (the encoder; the
tokenizer operator stays on the CPU), cached in /tmp/trt_engine_cache. `device cpu` restores the CPU
configs exactly. NGC's native backend and the local Python-based one (triton_backends/)
read the same lines.

Only the Python standard library: the Triton image runs this file on its own
(deploy/docker/triton.Dockerfile, `MODEL_DEVICE`).
"""

import argparse
import re
import sys
from pathlib import Path

DEVICES = ("cpu", "gpu")
ACCELERATORS = ("cuda", "tensorrt")
BEGIN = "# -- device: written by `python -m export device`; `device cpu` removes it"
END = "# -- end of device"
# The backend's names for the TensorRT execution provider's options (NGC's onnxruntime
# backend README, "TensorRT Execution Provider"); the engine cache keeps a restart from
# rebuilding the engines (minutes).
TENSORRT_BLOCK = """optimization { execution_accelerators { gpu_execution_accelerator: [ {
  name: "tensorrt"
  parameters { key: "precision_mode" value: "FP16" }
  parameters { key: "max_workspace_size_bytes" value: "1073741824" }
  parameters { key: "trt_engine_cache_enable" value: "1" }
  parameters { key: "trt_engine_cache_path" value: "/tmp/trt_engine_cache" }
} ] } }"""
_KIND = re.compile(r"kind:\s*KIND_(CPU|GPU)")
_ONNX_BACKEND = re.compile(r'^backend:\s*"onnxruntime"', re.MULTILINE)
# A config with this line stays on the CPU (its operators have no GPU kernel: credit_model)
CPU_ONLY = "# device: cpu only"
_BLOCK = re.compile(rf"{re.escape(BEGIN)}\n.*?{re.escape(END)}\n", re.DOTALL)


def config_for(text: str, device: str, accelerator: str = "tensorrt") -> str:
    """The config `text` with its instances on `device` (and TensorRT's block on a GPU when
    asked); a config whose model is not on the onnxruntime backend, or that says CPU_ONLY,
    comes back unchanged."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {ACCELERATORS}, not {accelerator!r}")
    if not _ONNX_BACKEND.search(text) or CPU_ONLY in text.splitlines():
        return text
    text = _BLOCK.sub("", text)
    text = _KIND.sub(f"kind: KIND_{device.upper()}", text)
    if device == "gpu" and accelerator == "tensorrt":
        ending = "" if text.endswith("\n") else "\n"
        text = f"{text}{ending}{BEGIN}\n{TENSORRT_BLOCK}\n{END}\n"
    return text


def set_device(repository: Path, device: str, accelerator: str = "tensorrt") -> list[Path]:
    """Rewrite the configs of `repository`'s onnxruntime models for `device`; return those
    that changed. Each file is replaced whole (a Triton reading it never sees half)."""
    changed = []
    for path in sorted(repository.glob("*/config.pbtxt")) + sorted(
        repository.glob("*/configs/*.pbtxt")
    ):
        text = path.read_text()
        new = config_for(text, device, accelerator)
        if new != text:
            partial = path.with_name(path.name + ".partial")
            partial.write_text(new)
            partial.replace(path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export device", description=__doc__.split("\n")[0])
    parser.add_argument("device", choices=DEVICES)
    parser.add_argument("--accelerator", choices=ACCELERATORS, default="tensorrt")
    parser.add_argument("--repository", type=Path, required=True)
    args = parser.parse_args(argv)
    changed = set_device(args.repository, args.device, args.accelerator)
    for path in changed:
        print(f"{path.relative_to(args.repository)}: {args.device}", flush=True)
    where = f"gpu ({args.accelerator})" if args.device == "gpu" else "cpu"
    print(f"{len(changed)} config(s) of {args.repository} rewritten for {where}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
