"""Smoke tests of the load-test tooling against the session's Triton: both benchmarks and a
short Locust run produce well-formed JSON, CSV, HTML and PNG files. Speed is not checked
(benchmarks are not timed tests; their figures live in loadtest/results/).
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from matplotlib import image

from loadtest.__main__ import main as run_main
from loadtest.bench import servers
from loadtest.bench.__main__ import main as bench_main
from loadtest.bench.llama_server import binary_path, installed_version
from loadtest.bench.triage import orchestrator_triton_env
from loadtest.run import hostname, is_loopback, listed_classes, parse_run_time, refused_targets

# Which orchestrator route each Locust user class needs; TritonTriageUser needs only Triton.
ROUTES_OF_CLASS = {
    "TriageUser": "/v1/triage",
    "TicketUser": "/v1/tickets",
    "ChatUser": "/v1/chat/completions",
    "ModelStatusUser": "/v1/model/status",
}
# Entries (type, name prefix) each class must leave in Locust's statistics.
ENTRIES_OF_CLASS = {
    "TriageUser": [("POST", "/v1/triage")],
    "TicketUser": [("POST", "/v1/tickets")],  # either task: POST, or POST ?wait=true
    "ChatUser": [("POST", "/v1/chat/completions"), ("SSE", "chat TTFT"), ("SSE", "chat TPOT")],
    "ModelStatusUser": [("GET", "/v1/model/status")],
    "TritonTriageUser": [("TRITON", "ticket_triage")],
}
ALL_SCOPES = ("tickets:write", "tickets:read", "chat", "admin")


@pytest.fixture
def triton_env(monkeypatch, triton_settings) -> None:
    """TRITON_* pointing at the session's Triton, as the bench's settings read them."""
    for name, value in {
        "TRITON_HTTP_PORT": triton_settings.http_port,
        "TRITON_GRPC_PORT": triton_settings.grpc_port,
        "TRITON_METRICS_PORT": triton_settings.metrics_port,
    }.items():
        monkeypatch.setenv(name, str(value))


def _summaries_are_sane(by_concurrency: dict, requests: int) -> None:
    for summary in by_concurrency.values():
        assert summary["requests"] == requests and summary["errors"] == 0, summary
        assert summary["throughput_per_s"] > 0 and summary["p50_ms"] > 0
        assert 0 < summary["client_cpu_share"] <= 1
        assert summary["runs"] == 1


@pytest.mark.slow
def test_xray_bench_scores_the_served_path_and_measures_it(
    triton, triton_settings, triton_env, built_repository, tmp_path
):
    """The accuracy pass sends every test image; the speed rounds are tiny."""
    output = tmp_path / "xray.json"
    argv = ["xray", "--url", triton_settings.grpc_url, "--repository", str(built_repository[0])]
    argv += ["--concurrency", "1,2", "--requests", "16", "--repeat", "1"]
    assert bench_main([*argv, "--output", str(output)]) == 0

    report = json.loads(output.read_text())
    served = report["served_accuracy"]
    assert served["images"] == 624 and sum(served["confusion"].values()) == 624
    assert served["auc"] > 0.8
    assert set(report["triton_ensemble"]) == {"batching_off", "queue_delay_0us"}
    for by_concurrency in (*report["triton_ensemble"].values(), report["orchestrator"]):
        assert set(by_concurrency) == {"1", "2"}
        _summaries_are_sane(by_concurrency, requests=16)
    assert report["ceiling_in_process_images_per_s"] > 0
    assert 0 < report["ratios"]["orchestrator_to_ceiling_c2"] < 1
    for label in ("normal", "pneumonia"):
        picture = Path(served["heatmaps"][label]["file"])
        assert picture.read_bytes().startswith(b"\x89PNG")
    assert output.with_suffix(".png").read_bytes().startswith(b"\x89PNG")  # the confusion matrix


@pytest.mark.slow
def test_triage_bench_measures_every_variant(
    triton, triton_settings, triton_env, built_repository, tmp_path
):
    output = tmp_path / "triage.json"
    argv = ["triage", "--url", triton_settings.grpc_url, "--repository", str(built_repository[0])]
    # 24 requests: enough that the orchestrator's CPU time is above psutil's 10 ms tick
    argv += ["--concurrency", "1,2", "--requests", "24", "--texts", "24", "--repeat", "1"]
    argv += ["--mixed-requests", "8"]
    assert bench_main([*argv, "--output", str(output)]) == 0

    report = json.loads(output.read_text())
    batching_on = f"queue_delay_{report['repository_queue_delay_us']}us"
    assert set(report["triton_ensemble"]) == {"batching_off", batching_on, "ticket_triage_steps"}
    assert report["ceiling_in_process"]["best_batch"].startswith(("steps_", "fused_"))
    assert set(report["one_text_under_batches"]) == {"worker_default", "largest_batches"}
    for mixed in report["one_text_under_batches"].values():
        assert mixed["errors"] == 0 and mixed["background_batches"] > 0
        assert 0 < mixed["p50_ms"] <= mixed["p95_ms"]
    assert report["ceiling_in_process"]["throughput_per_s"] > 0
    for by_concurrency in (
        *report["triton_ensemble"].values(),
        report["orchestrator"],
        report["orchestrator_uncoalesced"],
        report["plain_fastapi"],
    ):
        assert set(by_concurrency) == {"1", "2"}
        _summaries_are_sane(by_concurrency, requests=24)
    assert report["orchestrator"]["2"]["server_cpu_ms_per_request"] > 0
    assert report["http_servers"]["uvicorn_workers"] == 1
    for ratio in (
        "orchestrator_c2_vs_ceiling",
        "orchestrator_c2_vs_plain_fastapi",
        "orchestrator_c2_vs_triton_ensemble",
        "orchestrator_c2_vs_uncoalesced",
        f"{batching_on}_c2_vs_batching_off",
        "fused_c2_vs_steps",
    ):
        assert report["ratios"][ratio] > 0, ratio


@pytest.mark.slow
def test_evaluate_measures_the_orchestrator_and_triton_on_the_same_texts(
    triton, triton_settings, triton_env, built_repository, monkeypatch, tmp_path
):
    monkeypatch.setenv("TRITON_MODEL_REPOSITORY", str(built_repository[0]))
    output = tmp_path / "evaluate.json"
    argv = ["evaluate", "--url", triton_settings.grpc_url, "--limit", "40", "--versions", "2"]
    assert run_main([*argv, "--concurrency", "4", "--output", str(output)]) == 0

    report = json.loads(output.read_text())
    through_api, served = report["orchestrator"], report["served"]
    assert through_api["path"] == "POST /v1/triage" and report["texts"] == 40
    assert through_api["requests_per_s"] > 0 and through_api["latency"]["p50_ms"] > 0
    # the same model behind both; dynamic INT8 quantizes each batch by its own range, so a
    # different batching may move an answer or two
    assert abs(through_api["accuracy"] - served["accuracy"]) <= 2 / 40
    assert [r["encoder_version"] for r in report["results"]] == ["2"]


@pytest.mark.slow
def test_llm_bench_measures_every_side_with_equal_work(
    triton, triton_settings, triton_env, built_repository, tmp_path
):
    """The ceiling, Triton direct and the orchestrator (llama-server too where it is already
    built: building it takes minutes), each stream exactly max_tokens on every side."""
    output = tmp_path / "llm.json"
    argv = ["llm", "--url", triton_settings.grpc_url, "--repository", str(built_repository[0])]
    argv += ["--streams", "1,2", "--max-tokens", "6", "--repeat", "1", "--output", str(output)]
    binary = binary_path(installed_version())
    sides = {"ceiling", "triton", "orchestrator"}
    if binary.is_file():
        argv += ["--llama-server-binary", str(binary)]
        sides.add("llama_server")
    else:
        argv += ["--skip-llama-server"]
    assert bench_main(argv) == 0

    report = json.loads(output.read_text())
    for streams in ("1", "2"):
        assert set(report["results"][streams]) == sides
        for side, result in report["results"][streams].items():
            assert result["errors"] == 0 and result["tokens"] == 6 * int(streams), (side, result)
            assert result["ttft_p50_ms"] > 0 and result["itl_p50_ms"] > 0, (side, result)
    assert report["prompt_tokens_match"], report["results"]
    assert report["ratios"]["n2_triton_vs_ceiling"] > 0
    assert report["ratios"]["n2_orchestrator_vs_ceiling"] > 0
    assert image.imread(output.with_suffix(".png")).ndim == 3


@pytest.fixture(scope="module")
def orchestrator_for_locust(triton_settings, triton, built_repository):
    env = orchestrator_triton_env(triton_settings.grpc_url, built_repository[0], triton_settings)
    # Short drafts, and `?wait=true` answering 202 after 2 s: the run lasts a few seconds.
    fast = {"ORCHESTRATOR_DRAFT_MAX_TOKENS": "24", "ORCHESTRATOR_TICKET_WAIT_TIMEOUT_S": "2"}
    with servers.orchestrator(env, ALL_SCOPES, **fast) as served:
        yield served


def _classes_served(base_url: str) -> list[str]:
    """The Locust classes whose routes this orchestrator serves now, plus the Triton user."""
    paths = httpx.get(f"{base_url}/openapi.json", timeout=10).json()["paths"]
    return [c for c, route in ROUTES_OF_CLASS.items() if route in paths] + ["TritonTriageUser"]


@pytest.mark.slow
def test_locust_run_writes_csv_html_charts_and_summary(
    orchestrator_for_locust, triton_settings, tmp_path
):
    classes = _classes_served(orchestrator_for_locust.base_url)
    command = [sys.executable, "-m", "loadtest", "run", *classes, "--per-class", "1"]
    command += ["--spawn-rate", str(len(classes)), "--run-time", "8s"]
    command += [
        "--host",
        orchestrator_for_locust.base_url,
        "--triton-url",
        triton_settings.http_url,
    ]
    command += ["--reports-dir", str(tmp_path)]
    # Short streams: a busy 2-core machine decodes at a few tokens a second.
    env = dict(
        os.environ, LOADTEST_API_KEY=orchestrator_for_locust.api_key, LOADTEST_CHAT_MAX_TOKENS="8"
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)

    (folder,) = tmp_path.iterdir()
    failures = folder / "locust_failures.csv"
    failed = failures.read_text() if failures.is_file() else (folder / "locust.log").read_text()
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{failed[-3000:]}"
    summary = json.loads((folder / "summary.json").read_text())
    entries = {(e["type"], e["name"]): e for e in summary["entries"]}
    assert entries[("", "Aggregated")]["requests"] > 0
    for user_class in classes:
        for kind, prefix in ENTRIES_OF_CLASS[user_class]:
            found = [n for k, n in entries if k == kind and n.startswith(prefix)]
            assert found, f"{user_class}: no {kind} {prefix} entry in {list(entries)}"
    _reports_are_well_formed(folder)
    assert "requests" in done.stdout and str(folder) in done.stdout  # the summary table


def _reports_are_well_formed(folder: Path) -> None:
    with (folder / "locust_stats_history.csv").open(newline="") as f:
        history = list(csv.DictReader(f))
    assert any(row["Name"] == "Aggregated" for row in history)
    html = (folder / "report.html").read_text()
    assert "<html" in html.lower() and "locust" in html.lower()
    for chart in ("throughput.png", "latency.png"):
        pixels = image.imread(folder / chart)
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200


def test_only_loopback_targets_unless_allowed():
    assert is_loopback(hostname("http://127.0.0.1:8080")) and is_loopback(
        hostname("localhost:8000")
    )
    assert is_loopback(hostname("http://[::1]:8080/v1"))
    assert refused_targets(
        {"--host": "http://10.1.2.3:8080", "--triton-url": "127.0.0.1:8000"}
    ) == ["--host http://10.1.2.3:8080"]
    assert run_main(["run", "--host", "http://192.0.2.7", "--run-time", "1s"]) == 2


def test_run_time_is_bounded_and_readable():
    assert [parse_run_time(t) for t in ("90", "90s", "5m", "1h30m")] == [90, 90, 300, 5400]
    for bad in ("0", "forever", "5x", "48h"):
        with pytest.raises(ValueError):
            parse_run_time(bad)


def test_the_class_list_matches_the_locustfile():
    assert set(listed_classes()) == set(ENTRIES_OF_CLASS)
