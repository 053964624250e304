"""llama.cpp's own `llama-server`: built from source once, cached, started for the LLM bench.

The source is the llama.cpp that llama-cpp-python vendors in its source distribution, at the
installed version, compiled with the Makefile's LLAMA_CMAKE_ARGS (contracts/llama_build.py), so
the server runs the same kernels as the in-process ceiling and the `llm` model. `pip download`
fetches the sdist into var/llama-server/ (git-ignored), CMake builds the `llama-server` target
alone (a static binary: no shared libraries to find), and the binary is kept as
var/llama-server/<version>-<flags digest>/llama-server beside a build.json. Later runs find it.
The build takes several minutes on two cores; its progress goes to stderr.

Only the standard library and contracts are imported at module level: the build works before
the project's environment is complete.
"""

import json
import os
import shutil
import subprocess  # nosec B404  # pip, cmake and the server itself, fixed argv, no shell
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

from contracts.llama_build import cmake_args, flags_digest

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / "var" / "llama-server"
PACKAGE = "llama-cpp-python"

# Only the server target, static; no web UI (its assets would be downloaded), no TLS, no tests
# or examples. The CPU flags are the product's own (cmake_options()).
BUILD_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)


def cmake_options() -> list[str]:
    return [*BUILD_OPTIONS, *cmake_args()]


class BuildError(RuntimeError):
    """llama-server could not be built here; the message says what is missing."""


def installed_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise BuildError(f"{PACKAGE} is not installed: its version names the source") from None


def binary_path(version: str, cache: Path = CACHE) -> Path:
    """Kept per version and per set of CPU flags: a change of flags builds again."""
    return cache / f"{version}-{flags_digest(cmake_options())}" / "llama-server"


def download_command(version: str, into: Path) -> list[str]:
    """pip fetches the source distribution only (never a wheel, no dependencies)."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"{PACKAGE}=={version}", "--dest", str(into),
    ]  # fmt: skip


def configure_command(source: Path, build: Path, cmake: str = "cmake") -> list[str]:
    return [cmake, "-S", str(source), "-B", str(build), *cmake_options()]


def build_command(build: Path, jobs: int, cmake: str = "cmake") -> list[str]:
    return [cmake, "--build", str(build), "--target", "llama-server", "--parallel", str(jobs)]


def missing_tools(which=shutil.which) -> list[str]:
    """What the build needs and this machine lacks: cmake and a C/C++ compiler pair."""
    missing = [] if which("cmake") else ["cmake"]
    if not any(which(c) for c in ("cc", "gcc", "clang")):
        missing.append("a C compiler (gcc or clang)")
    if not any(which(c) for c in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler (g++ or clang++)")
    return missing


def _log(message: str) -> None:
    print(f"[llama-server] {message}", file=sys.stderr, flush=True)


def _run(command: list[str], what: str) -> None:
    _log(f"{what}: {' '.join(command)}")
    done = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)  # nosec B603
    if done.returncode != 0:
        raise BuildError(f"{what} failed (exit {done.returncode}); see the output above")


def _source(version: str, cache: Path) -> Path:
    """llama.cpp's source tree inside the unpacked sdist, downloaded on first use."""
    unpacked = cache / "src" / f"llama_cpp_python-{version}"
    tree = unpacked / "vendor" / "llama.cpp"
    if (tree / "tools" / "server" / "CMakeLists.txt").is_file():
        return tree
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / f"llama_cpp_python-{version}.tar.gz"
    if not archive.is_file():
        _run(download_command(version, downloads), f"downloading the {PACKAGE} {version} sdist")
    if not archive.is_file():
        raise BuildError(f"pip saved no {archive.name} in {downloads}")
    _log(f"unpacking {archive.name}")
    with tarfile.open(archive) as tar:
        tar.extractall(cache / "src", filter="data")
    if not (tree / "tools" / "server" / "CMakeLists.txt").is_file():
        raise BuildError(f"{archive.name} carries no vendor/llama.cpp/tools/server")
    return tree


def ensure_built(version: str | None = None, cache: Path = CACHE, jobs: int | None = None) -> Path:
    """The cached llama-server of `version` (default: the installed llama-cpp-python's),
    built first when it is not there yet."""
    version = version or installed_version()
    binary = binary_path(version, cache)
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    missing = missing_tools()
    if missing:
        raise BuildError(
            f"building llama-server needs {' and '.join(missing)} (on Debian: apt-get install "
            "cmake build-essential); or pass --llama-server-binary PATH, or --skip-llama-server"
        )
    started = time.monotonic()
    source = _source(version, cache)
    build = cache / f"build-{version}"
    jobs = jobs or len(os.sched_getaffinity(0))
    _log(f"building llama-server {version} with {jobs} jobs: several minutes on 2 cores")
    _run(configure_command(source, build), "configuring")
    _run(build_command(build, jobs), "building")
    built = build / "bin" / "llama-server"
    if not built.is_file():
        raise BuildError(f"the build left no {built}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, binary)
    seconds = round(time.monotonic() - started)
    facts = {"package": PACKAGE, "version": version, "cmake_options": cmake_options()}
    facts |= {"jobs": jobs, "build_seconds": seconds, "source": str(source)}
    (binary.parent / "build.json").write_text(json.dumps(facts, indent=2) + "\n")
    _log(f"built {binary} in {seconds} s")
    return binary


def server_command(
    binary: Path, model: Path, port: int, *, threads: int, parallel: int, context: int
) -> list[str]:
    """What a user would deploy: `parallel` slots with continuous batching over one unified
    KV cache of `context` cells (as the `llm` model has), prompt caching off so that repeated
    rounds of the same prompts do not start from cached cells."""
    return [
        str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--parallel", str(parallel), "--cont-batching", "--kv-unified",
        "--ctx-size", str(context), "--threads", str(threads), "--threads-batch", str(threads),
        "--no-cache-prompt", "--no-webui",
    ]  # fmt: skip


def binary_version(binary: Path) -> str:
    """`llama-server --version`'s first line (llama.cpp's build number and commit)."""
    done = subprocess.run(  # nosec B603  # the cached binary, fixed argv
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    return next((line for line in lines if line.startswith("version")), lines[0] if lines else "")


if __name__ == "__main__":  # `python -m loadtest.bench.llama_server [VERSION]`: build only
    print(ensure_built(sys.argv[1] if len(sys.argv) > 1 else None))
