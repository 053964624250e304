"""The served GGUF: the packaged file re-encoded once as Q8_0, cached, and what loads is Q8_0."""

import ctypes

import llama_cpp as lc
import pytest

from llm_engine.config import LLMConfig
from llm_engine.factory import serving_path
from llm_engine.gguf import serving_gguf
from llm_engine.packaged import packaged_gguf


def _description(path) -> str:
    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(str(path).encode(), lc.llama_model_default_params())
    assert model, f"llama.cpp could not load {path}"
    try:
        buffer = ctypes.create_string_buffer(128)
        lc.llama_model_desc(model, buffer, 128)
        return buffer.value.decode()
    finally:
        lc.llama_model_free(model)


def test_the_default_config_serves_the_packaged_model_re_encoded_as_q8_0_once(tmp_path):
    config = LLMConfig(cache_dir=str(tmp_path))
    served = serving_path(config)
    assert served.parent == tmp_path and served.name.endswith(".Q8_0.gguf")
    assert "Q8_0" in _description(served) and "Q4_1" in _description(packaged_gguf())
    written = served.stat().st_mtime_ns
    assert serving_path(config) == served and served.stat().st_mtime_ns == written  # cached
    assert [p.name for p in tmp_path.iterdir()] == [served.name]  # no partial file left


def test_an_empty_quantization_serves_the_file_as_it_is_and_a_typo_is_refused(tmp_path):
    source = packaged_gguf()
    assert serving_gguf(source, "", tmp_path) == source
    with pytest.raises(ValueError, match="quantization must be one of"):
        serving_gguf(source, "Q8", tmp_path)
    assert list(tmp_path.iterdir()) == []
