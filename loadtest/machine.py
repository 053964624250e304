"""Facts about the machine a measurement ran on, printed with every benchmark result."""

import contextlib
import os
import platform
import sys
from importlib import metadata

from contracts.runtime import usable_cores


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict:
    packages = {}
    for name in ("onnxruntime", "torch", "nvidia-pytriton", "tritonclient", "llama-cpp-python"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "cpu": cpu_model(),
        "cores_usable": usable_cores(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": packages,
        # Others' work on a shared machine shows here; a busy machine explains a slow run.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def command_line() -> str:
    """The command as typed: `python -m package ...` when run as a module."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        module = spec.name.removesuffix(".__main__")
        return " ".join(["python", "-m", module, *sys.argv[1:]])
    return " ".join(["python", *sys.argv])
