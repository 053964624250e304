"""`llm_fallback`: llm's code through a committed symlink, its own smaller settings, loaded
in a real Triton from a repository copied as the deploy copies it (symlinks kept)."""

import asyncio
import os
import shutil
import subprocess

import pytest

from contracts.models import LLM_FALLBACK_MODEL, LLM_MODEL, SERVED_MODELS
from export.repository import COMMITTED_REPOSITORY, ensure_configs
from orchestrator.triton.launcher import TritonServer
from orchestrator.triton.model_config import read_config
from tests.utils.ports import loopback_triton

FALLBACK = COMMITTED_REPOSITORY / LLM_FALLBACK_MODEL


def test_the_fallback_is_llms_code_through_a_relative_symlink_committed_in_git():
    link = FALLBACK / "1" / "model.py"
    assert link.is_symlink() and os.readlink(link) == "../../llm/1/model.py"
    assert link.resolve() == (COMMITTED_REPOSITORY / LLM_MODEL / "1" / "model.py").resolve()
    tracked = subprocess.run(
        ["git", "ls-files", "-s", str(link)], capture_output=True, text=True, check=True
    ).stdout
    assert tracked.startswith("120000 "), tracked  # a symlink in git, not a copy


def test_the_fallback_takes_llms_tensors_with_smaller_settings():
    llm, fallback = read_config(COMMITTED_REPOSITORY / LLM_MODEL), read_config(FALLBACK)
    assert list(fallback.input) == list(llm.input) and list(fallback.output) == list(llm.output)
    assert fallback.model_transaction_policy.decoupled and fallback.backend == llm.backend
    parameters = {k: v.string_value for k, v in fallback.parameters.items()}
    assert parameters == {"max_active_sequences": "4", "context_size": "4096"}
    assert {LLM_MODEL, LLM_FALLBACK_MODEL} <= set(SERVED_MODELS)  # the launcher loads both


def test_a_repository_written_for_tests_gets_the_fallbacks_code(tmp_path):
    ensure_configs(tmp_path)  # what the test builds and variants use (a copy of the file)
    copied = tmp_path / LLM_FALLBACK_MODEL / "1" / "model.py"
    assert copied.read_text() == (COMMITTED_REPOSITORY / LLM_MODEL / "1" / "model.py").read_text()


@pytest.mark.slow
def test_the_fallback_loads_from_a_copy_that_keeps_the_symlink_and_answers(tmp_path):
    from orchestrator.triton.llm_client import LLMClient

    repository = tmp_path / "repository"
    for model in (LLM_MODEL, LLM_FALLBACK_MODEL):  # as `cp -R` and Docker's COPY copy it
        shutil.copytree(COMMITTED_REPOSITORY / model, repository / model, symlinks=True)
    assert (repository / LLM_FALLBACK_MODEL / "1" / "model.py").is_symlink()
    settings = loopback_triton(repository, tmp_path)
    with TritonServer(settings, models=(LLM_FALLBACK_MODEL,)):
        llm = LLMClient(settings.grpc_url, LLM_FALLBACK_MODEL)
        messages = [{"role": "user", "content": "Say hello."}]
        generation = asyncio.run(llm.generate(messages, max_tokens=4))
    assert generation.model == LLM_FALLBACK_MODEL and generation.completion_tokens > 0
