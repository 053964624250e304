"""The installed llama.cpp is the portable build the Makefile compiles (utils/llama_build.py)."""

from contracts.llama_build import makefile_value
from tests.utils.llama_build import foreign_features, problems

PORTABLE = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
]
AMX_NATIVE = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | "


def test_the_installed_library_is_the_makefiles():
    assert problems() == []


def test_a_native_build_from_a_newer_cpu_is_named():
    assert foreign_features(AMX_NATIVE, PORTABLE) == ["AMX_INT8", "AVX512", "AVX512_VNNI"]
    portable = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | "
    assert foreign_features(portable, PORTABLE) == []


def test_flags_that_ask_for_more_allow_it():
    assert foreign_features(AMX_NATIVE, [*PORTABLE, "-DGGML_AVX512=ON"]) == [
        "AMX_INT8",
        "AVX512_VNNI",
    ]
    assert foreign_features(AMX_NATIVE, ["-DGGML_NATIVE=ON"]) == []


def test_the_makefile_names_the_version_pyproject_pins():
    assert makefile_value("LLAMA_CPP_VERSION") == "0.3.36"
