"""Is the installed llama.cpp the one the Makefile compiles? A library compiled for another CPU
(natively on a newer machine, then handed round by pip's wheel cache) does not fail cleanly:
it segfaults inside llama_decode and takes the whole test run with it. So the suite checks
first, from what the library reports of itself, and stops with a message that says what to do.
"""

import re
from importlib import metadata

from contracts import PROJECT_ROOT
from contracts.llama_build import cmake_args, makefile_value

PYPROJECT = PROJECT_ROOT / "pyproject.toml"

# Instruction sets that only newer CPUs have: a library using one the flags do not enable was
# compiled for some other machine than every machine this project runs on.
NEWER_ISA = re.compile(r"^(AVX512\w*|AVX_VNNI\w*|AMX\w*)$")


def enabled_features(system_info: str) -> set[str]:
    """`llama_print_system_info()`: "CPU : SSE3 = 1 | AVX2 = 1 | ..." -> {"SSE3", "AVX2"}."""
    return {name for name, value in re.findall(r"(\w+) = (\d+)", system_info) if value != "0"}


def foreign_features(system_info: str, flags: list[str]) -> list[str]:
    """The newer instruction sets the library uses that the flags do not turn on."""
    if "-DGGML_NATIVE=ON" in flags:
        return []  # a native build is what was asked for
    asked = {m.group(1) for f in flags if (m := re.fullmatch(r"-DGGML_(\w+)=ON", f))}
    return sorted(f for f in enabled_features(system_info) if NEWER_ISA.match(f) and f not in asked)


def problems() -> list[str]:
    """What is wrong with the installed llama-cpp-python, each with what to do; [] when fine."""
    import llama_cpp

    wanted = makefile_value("LLAMA_CPP_VERSION")
    found = []
    installed = metadata.version("llama-cpp-python")
    if installed != wanted:
        found.append(f"llama-cpp-python {installed} is installed; the Makefile compiles {wanted}")
    if f'"llama-cpp-python=={wanted}"' not in PYPROJECT.read_text():
        found.append(f"pyproject.toml does not pin llama-cpp-python=={wanted} as the Makefile")
    info = llama_cpp.llama_print_system_info().decode()
    foreign = foreign_features(info, cmake_args())
    if foreign:
        found.append(
            f"llama.cpp was compiled for another CPU (it uses {', '.join(foreign)}; the"
            f" Makefile's flags are {' '.join(cmake_args())}), most likely a wheel from pip's"
            " cache: it can crash in llama_decode. Run `make clean-venv test` to compile it again."
        )
    return found
