"""How llama.cpp is compiled in this project: the Makefile's LLAMA_CMAKE_ARGS.

The Makefile compiles llama-cpp-python's wheel with these flags (portable x86-64-v3, not the
build machine's CPU); the LLM bench compiles llama-server with the same ones, so that the peer
runs the same kernels as the `llm` model; the test suite checks the installed library against
them. Standard library only: the bench's build runs before the project is installed.
"""

import hashlib
import os
import re
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def makefile_value(name: str, makefile: Path = MAKEFILE) -> str:
    """A variable's value as the Makefile sets it (`NAME ?= value` or `NAME := value`)."""
    match = re.search(rf"^{name}\s*[?:]?=\s*(.*)$", makefile.read_text(), re.MULTILINE)
    if match is None:
        raise LookupError(f"{makefile} sets no {name}")
    return match.group(1).strip()


def cmake_args() -> list[str]:
    """The flags `make` compiles with: LLAMA_CMAKE_ARGS from the environment, as make reads it
    (the Makefile sets it with ?=), else the Makefile's own."""
    return (os.environ.get("LLAMA_CMAKE_ARGS") or makefile_value("LLAMA_CMAKE_ARGS")).split()


def flags_digest(args: list[str]) -> str:
    """A short name for a set of flags: builds with other flags are kept apart."""
    return hashlib.sha256(" ".join(args).encode()).hexdigest()[:12]
