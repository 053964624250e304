"""The helpers that live once and serve several packages, and the llm's one set of defaults."""

import os

import numpy as np
import pytest
from prometheus_client import Histogram

from contracts import PROJECT_ROOT
from contracts.runtime import usable_cores
from contracts.tokens import encode_batch, load_tokenizer, pad_batch
from llm_engine.config import DEFAULTS, LLMConfig
from llm_engine.factory import create_engine
from loadtest.bench.client import median_of_runs
from loadtest.sse import DONE, delta_text, sse_data
from orchestrator.metrics import Metrics, ResourceGauges
from orchestrator.triton.model_config import read_config


def test_pad_batch_pads_right_with_zeros_to_the_longest_or_a_given_width():
    ids, mask = pad_batch([[5, 6, 7], [8]])
    assert ids.dtype == mask.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5]], width=4)
    assert ids.tolist() == [[5, 0, 0, 0]] and mask.tolist() == [[1, 0, 0, 0]]
    with pytest.raises(ValueError, match="row 0 holds 3 tokens"):
        pad_batch([[1, 2, 3]], width=2)


def test_the_packaged_tokenizer_truncates_and_pads_only_per_batch():
    from export.packaged import encoder_dir

    tokenizer = load_tokenizer(encoder_dir() / "tokenizer.json", max_length=8)
    ids, mask = encode_batch(tokenizer, ["Hi", "where is my card " * 10])
    assert ids.shape == (2, 8)  # the long text is cut at 8, not padded to 128
    assert mask[0].sum() < 8 and mask[1].sum() == 8


def test_usable_cores_are_this_process_affinity():
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_llm_config_reads_tritons_string_parameters_and_refuses_typos():
    assert LLMConfig.from_parameters({}) == DEFAULTS
    config = LLMConfig.from_parameters({"max_active_sequences": "4", "model_path": "/m"})
    assert config.max_active_sequences == 4 and config.model_path == "/m"
    assert config.context_size == DEFAULTS.context_size
    with pytest.raises(ValueError, match="max_active_sequence"):
        LLMConfig.from_parameters({"max_active_sequence": "4"})
    with pytest.raises(ValueError, match="context_size must be a whole number"):
        LLMConfig.from_parameters({"context_size": "lots"})
    with pytest.raises(ValueError, match="unknown engine 'vllm'"):
        create_engine(LLMConfig(engine="vllm"))


def test_the_committed_llm_config_restates_no_default():
    """The defaults live in llm_engine/config.py only; config.pbtxt sets what differs."""
    config = read_config(PROJECT_ROOT / "model_repository" / "llm")
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    parsed = LLMConfig.from_parameters(parameters)
    restated = [k for k in parameters if getattr(parsed, k) == getattr(DEFAULTS, k)]
    assert restated == []


def test_median_of_runs_keeps_ints_skips_missing_figures_and_shows_the_spread():
    runs = [
        {"requests": 10, "rate": 1.0, "ttft": None, "ok": True},
        {"requests": 11, "rate": 3.0, "ttft": 0.5, "ok": True},
        {"requests": 13, "rate": 2.0, "ttft": 0.7, "ok": False},
    ]
    merged = median_of_runs(runs, each="rate")
    assert merged["requests"] == 11 and merged["rate"] == 2.0
    assert "ttft" not in merged and "ok" not in merged  # not a number in the first run
    assert merged["runs"] == 3 and merged["rate_each_run"] == [1.0, 3.0, 2.0]
    assert median_of_runs([{8: 1.0}, {8: 3.0}], each=None) == {8: 2.0}


def test_sse_lines_and_chat_chunks():
    assert sse_data("data: {}") == "{}" and sse_data("data:[DONE]") == DONE
    assert sse_data("event: draft") is None and sse_data("") is None
    chunk = {"choices": [{"delta": {"content": "Hel"}}, {"delta": {}}]}
    assert delta_text(chunk) == "Hel" and delta_text({"choices": []}) == ""


# deploy/grafana and deploy/prometheus chart and alert on these names (tests/deploy/test_deploy.py
# checks them against live scrapes, in the slow lane); renaming one breaks a dashboard.
METRIC_NAMES = {
    "support_http_request_duration_seconds", "support_triage_outcomes",
    "support_generation_ttft_seconds", "support_generation_tpot_seconds",
    "support_generation_tokens", "support_jobs_queue_depth", "support_jobs_oldest_age_seconds",
    "support_jobs_processed", "support_model_memory_delta_bytes", "support_host_cpu_percent",
    "support_host_memory_used_bytes", "support_host_memory_total_bytes",
    "support_process_resident_memory_bytes", "support_gpu_utilization_percent",
    "support_gpu_memory_used_bytes", "support_gpu_memory_total_bytes",
    "support_llm_failovers", "support_llm_breaker_state", "support_mlflow_record_failures",
    "support_canary_aborts", "support_drift_share", "support_prediction_drift_score",
    "support_override_rate", "support_diagnoses", "support_credit_decisions",
    "support_credit_psi",
}  # fmt: skip
# `tenant`: the drift gauges', one series per tenant with enough traffic for a drift pass
BOUNDED_LABELS = {"route", "method", "status", "department", "priority", "source", "kind",
                  "outcome", "model", "action", "gpu", "primary", "fallback", "reason",
                  "tenant", "label", "decision", "feature"}  # fmt: skip


def test_metric_families_keep_their_names_bounded_labels_and_explicit_buckets():
    metrics = Metrics()
    ResourceGauges(metrics.registry)
    families = {family.name: family for family in metrics.registry.collect()}
    assert set(families) == METRIC_NAMES
    for collector in metrics.registry._collector_to_names:
        assert set(collector._labelnames) <= BOUNDED_LABELS, collector._name
        if isinstance(collector, Histogram):
            assert collector._name.endswith("_seconds"), collector._name
            assert collector._upper_bounds[:-1] != list(Histogram.DEFAULT_BUCKETS[:-1])
    counters = [f for f in families.values() if f.type == "counter"]
    assert counters and all(
        s.name.endswith(("_total", "_created")) for f in counters for s in f.samples
    )


def test_llm_metric_families_follow_the_same_rules():
    from llm_engine.metrics import FAMILIES, PREFIX

    names = {PREFIX + f.name for f in FAMILIES.values()}
    assert "support_llm_time_to_first_token_seconds" in names  # charted by deploy/grafana
    for family in FAMILIES.values():
        assert (family.kind == "counter") == family.name.endswith("_total"), family.name
        assert (family.kind == "histogram") == family.name.endswith("_seconds"), family.name
        assert (family.buckets is not None) == (family.kind == "histogram"), family.name
