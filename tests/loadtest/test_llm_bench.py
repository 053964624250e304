"""The LLM bench's parts, cheaply: the in-process ceiling on a handful of tokens of the packaged
GGUF, the figures and ratios, llama-server's build and run commands, the side-by-side order
and the CLI with fake sides. The whole bench against a real Triton is in test_loadtest.py
(slow); the figures themselves are measured, not tested.
"""

import asyncio
import json
import subprocess
import threading

import httpx
import pytest
from matplotlib import image

from contracts.llama_build import cmake_args
from loadtest.bench import llama_server
from loadtest.bench import llm as bench
from loadtest.bench.__main__ import main as bench_main
from loadtest.bench.llama_ceiling import LlamaCeiling, cells_needed, common_prefix
from loadtest.report import llm_bench_chart

MAX_TOKENS = 4


# ---- the ceiling, on the packaged GGUF ---------------------------------------------------------
@pytest.fixture(scope="module")
def ceiling():
    with LlamaCeiling(threads=2, max_sequences=4, context_size=1024, batch_tokens=64) as llama:
        yield llama


def _tokens(llama: LlamaCeiling, n: int) -> list[list[int]]:
    return [llama.tokenize(llama.render(m)) for m in bench.prompts(n)]


def test_prompts_are_distinct_and_share_only_the_system_prompt():
    chats = bench.prompts(20)
    users = [c[1]["content"] for c in chats]
    assert len(set(users)) == 20
    assert {c[0]["content"] for c in chats} == {bench.SYSTEM}
    assert bench.prompts(4) == chats[:4]  # the same work on every side and every run
    fresh = [c[1]["content"] for c in bench.prompts(3, "0042")]
    assert all(u.startswith("(ref 0042) ") for u in fresh)  # first: nothing past it is shared


def test_the_ceiling_renders_and_tokenizes_as_the_llm_model_does(ceiling):
    from llm_engine.llama_cpp_engine import LlamaCppEngine

    engine = LlamaCppEngine(max_slots=1, context_size=256, step_tokens=64, threads=1)
    try:
        for messages in bench.prompts(3):
            text = engine.render_chat(messages)
            assert ceiling.render(messages) == text
            assert ceiling.tokenize(text) == engine.tokenize(text)
    finally:
        engine.close()


def test_the_ceiling_decodes_exactly_max_tokens_per_sequence_together(ceiling):
    prompts = _tokens(ceiling, 3)
    run = ceiling.run(prompts, MAX_TOKENS)
    assert [d.prompt_tokens for d in run.sequences] == [len(p) for p in prompts]
    for decoded in run.sequences:
        assert len(decoded.tokens) == len(decoded.arrivals) == MAX_TOKENS
        assert run.started < decoded.arrivals[0]
        assert decoded.arrivals == sorted(decoded.arrivals)
    # One decode per step for all: every sequence's n-th token is ready at the same moment.
    assert len({d.arrivals[-1] for d in run.sequences}) == 1
    # Greedy, and batching changes nothing: each alone decodes the same tokens.
    for prompt, decoded in zip(prompts, run.sequences, strict=True):
        assert ceiling.run([prompt], MAX_TOKENS).sequences[0].tokens == decoded.tokens


def test_the_ceiling_ignores_end_of_sequence(ceiling):
    # Greedy, the model ends its answer to "Hi" within a few tokens; the ceiling goes on.
    prompt = ceiling.tokenize(ceiling.render([{"role": "user", "content": "Hi"}]))
    tokens = ceiling.run([prompt], 24).sequences[0].tokens
    assert len(tokens) == 24
    assert any(ceiling.ends_generation(t) for t in tokens[:-1])


def test_the_ceiling_refuses_more_than_its_context_or_sequences(ceiling):
    prompts = _tokens(ceiling, 4)
    with pytest.raises(ValueError, match="KV cells"):
        ceiling.run(prompts, 1024)
    with pytest.raises(ValueError, match="1 to 4"):
        ceiling.run(prompts + prompts[:1], MAX_TOKENS)


def test_the_shared_prefix_is_counted_once():
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]]
    assert common_prefix(prompts) == 9
    assert cells_needed(prompts, 4) == 9 + (1 + 4) + (2 + 4)
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps its last token
    assert cells_needed([[1, 2, 3], [1, 2, 3]], 4) == 2 * (3 + 4)  # too short to share


def test_the_ceiling_side_summarises_its_run(ceiling):
    side = object.__new__(bench.Ceiling)  # the loaded model, not a second one
    side.llama = ceiling
    result = side(2, MAX_TOKENS)
    assert result["streams"] == 2 and result["errors"] == 0
    assert result["tokens"] == 2 * MAX_TOKENS
    assert result["prompt_tokens"] == sum(len(p) for p in _tokens(ceiling, 2))
    assert result["tokens_per_s"] > 0 and result["ttft_p50_ms"] > 0 and result["itl_p50_ms"] > 0


# ---- figures, ratios, aims ---------------------------------------------------------------------
def test_summarise_counts_reported_tokens_ttft_and_gaps():
    streams = [
        bench.Stream(sent=0.0, arrivals=[0.1, 0.2, 0.4], tokens=5, prompt_tokens=10),
        bench.Stream(sent=0.0, arrivals=[0.3, 0.5], tokens=3, prompt_tokens=12),
        bench.Stream(sent=0.0, error="HTTP 503"),
    ]
    result = bench.summarise(streams, wall=2.0)
    assert result["errors"] == 1 and result["tokens"] == 8 and result["prompt_tokens"] == 22
    assert result["tokens_per_s"] == 4.0
    assert result["ttft_p50_ms"] == 200.0
    assert result["itl_p50_ms"] == 200.0  # gaps 100, 200, 200 ms
    assert result["first_error"] == "HTTP 503"
    with pytest.raises(RuntimeError, match="triton: the warm-up request failed: HTTP 503"):
        bench.warmed_up("triton", result)
    bench.warmed_up("triton", bench.summarise(streams[:2], wall=2.0))


def _row(**rates):
    return {
        side: {"tokens_per_s": rate, "ttft_p95_ms": ttft, "prompt_tokens": 40}
        for side, (rate, ttft) in rates.items()
    }


RESULTS = {
    "1": _row(ceiling=(100, 50), llama_server=(80, 60), triton=(90, 70), orchestrator=(85, 80)),
    "16": _row(
        ceiling=(400, 600), llama_server=(300, 900), triton=(380, 700), orchestrator=(300, 1200)
    ),
}


def test_ratios_are_to_the_ceiling_and_to_llama_server():
    ratios = bench.ratios(RESULTS)
    assert ratios["n16_triton_vs_ceiling"] == 0.95
    assert ratios["n16_triton_vs_llama_server"] == round(380 / 300, 3)
    assert ratios["n1_llama_server_vs_ceiling"] == 0.8
    assert ratios["n1_orchestrator_vs_llama_server"] == round(85 / 80, 3)
    assert "n1_ceiling_vs_llama_server" not in ratios and "n1_ceiling_vs_ceiling" not in ratios


def test_aims_say_which_are_met():
    met = {a["aim"]: a["met"] for a in bench.aims(RESULTS)}
    assert met == {
        "triton at 16 streams: tokens_per_s / ceiling's >= 0.9": True,
        "triton at 16 streams: tokens_per_s / llama_server's > 1.0": True,
        "triton at 1 streams: tokens_per_s / llama_server's >= 1.0": True,
        "orchestrator at 16 streams: tokens_per_s / ceiling's >= 0.8": False,  # 0.75
        "triton at 16 streams: ttft_p95_ms < 1000": True,
        "orchestrator at 16 streams: ttft_p95_ms < 1000": False,
    }
    unmeasured = bench.aims({"1": _row(ceiling=(100, 50), triton=(90, 70))})
    assert [a["met"] for a in unmeasured] == [None] * len(bench.AIMS)


def test_prompt_tokens_must_match_on_every_side():
    assert bench.prompt_tokens_match(RESULTS)
    uneven = {"1": {**RESULTS["1"], "llama_server": {**RESULTS["1"]["llama_server"]}}}
    uneven["1"]["llama_server"]["prompt_tokens"] = 41
    assert not bench.prompt_tokens_match(uneven)


# ---- side by side --------------------------------------------------------------------------
def test_sides_run_one_at_a_time_round_by_round_with_medians():
    calls, references, busy = [], [], threading.Lock()

    def side(name: str, rates: list[float]):
        def measure(n: int, reference: str) -> dict:
            assert busy.acquire(blocking=False), "two sides at once"
            try:
                calls.append((name, n))
                references.append(reference)
                return {"tokens_per_s": rates.pop(0) * n, "errors": 0, "ttft_p95_ms": None}
            finally:
                busy.release()

        return measure

    sides = {"ceiling": side("ceiling", [10, 30, 20] * 2), "triton": side("triton", [9] * 6)}
    results = bench.side_by_side(sides, [1, 4], repeat=3, log=lambda _line: None)
    assert calls[:4] == [("ceiling", 1), ("triton", 1), ("ceiling", 4), ("triton", 4)]
    assert len(calls) == 12
    # every measurement has prompts of its own (no prompt cache holds them), all as long
    assert len(set(references)) == 12 and len({len(r) for r in references}) == 1
    assert results["1"]["ceiling"]["tokens_per_s"] == 20  # median of 10, 20, 30 (n=1)
    assert results["1"]["ceiling"]["tokens_per_s_each_run"] == [10, 20, 30]
    assert results["4"]["triton"]["tokens_per_s"] == 36 and results["4"]["triton"]["runs"] == 3
    assert "ttft_p95_ms" not in results["4"]["triton"]  # never measured: left out


# ---- llama-server: build and run commands, streams parsed --------------------------------------
def test_the_build_fetches_the_sdist_and_builds_only_a_static_server(tmp_path):
    download = llama_server.download_command("0.3.36", tmp_path)
    assert download[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--no-binary", ":all:", "llama-cpp-python==0.3.36"} <= set(download)
    configure = llama_server.configure_command(tmp_path / "src", tmp_path / "build")
    for option in (
        "-DLLAMA_BUILD_SERVER=ON",
        "-DBUILD_SHARED_LIBS=OFF",  # the cached binary must run on its own
        *cmake_args(),  # the same kernels as the `llm` model's llama-cpp-python
        "-DLLAMA_USE_PREBUILT_UI=OFF",  # would download the web UI
        "-DLLAMA_BUILD_TESTS=OFF",
    ):
        assert option in configure, option
    build = llama_server.build_command(tmp_path / "build", jobs=2)
    assert build[build.index("--target") + 1] == "llama-server"
    assert build[build.index("--parallel") + 1] == "2"


def test_the_server_runs_16_slots_with_continuous_batching(tmp_path):
    command = llama_server.server_command(
        tmp_path / "llama-server", tmp_path / "m.gguf", 8123, threads=2, parallel=16, context=8192
    )
    assert "--cont-batching" in command and "--kv-unified" in command
    assert command[command.index("--parallel") + 1] == "16"
    assert command[command.index("--threads") + 1] == "2"
    assert command[command.index("--ctx-size") + 1] == "8192"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--model") + 1] == str(tmp_path / "m.gguf")
    assert "--no-cache-prompt" in command  # rounds of the same prompts start from scratch


def test_a_cached_binary_is_used_without_building(tmp_path, monkeypatch):
    binary = llama_server.binary_path("9.9.9", tmp_path)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setattr(llama_server, "_run", lambda *a: pytest.fail("built again"))
    assert llama_server.ensure_built("9.9.9", tmp_path) == binary


def test_missing_build_tools_are_named(tmp_path, monkeypatch):
    assert llama_server.missing_tools(lambda _name: None) == [
        "cmake",
        "a C compiler (gcc or clang)",
        "a C++ compiler (g++ or clang++)",
    ]
    assert llama_server.missing_tools(lambda name: f"/usr/bin/{name}") == []
    monkeypatch.setattr(llama_server, "missing_tools", lambda: ["cmake"])
    monkeypatch.setattr(llama_server, "_run", lambda *a: pytest.fail("no build without tools"))
    with pytest.raises(llama_server.BuildError, match=r"needs cmake.*--skip-llama-server"):
        llama_server.ensure_built("9.9.9", tmp_path)


def test_a_failed_build_step_says_so(monkeypatch):
    with pytest.raises(llama_server.BuildError, match="configuring failed"):
        llama_server._run(["false"], "configuring")


def test_llama_server_streams_count_tokens_from_the_final_chunk():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        pieces = [{"content": w, "stop": False} for w in ("Your", " card", "")]
        final = {"content": "", "stop": True, "tokens_predicted": 4, "tokens_evaluated": 41}
        events = "".join(f"data: {json.dumps(c)}\n\n" for c in [*pieces, final])
        return httpx.Response(200, text=events, headers={"content-type": "text/event-stream"})

    result = asyncio.run(
        bench.llama_server_streams(
            "http://llama", ["a", "b"], 4, transport=httpx.MockTransport(handler)
        )
    )
    assert result["tokens"] == 8 and result["prompt_tokens"] == 82 and result["errors"] == 0
    assert {b["prompt"] for b in seen} == {"a", "b"}
    assert all(b["ignore_eos"] and b["n_predict"] == 4 and b["stream"] for b in seen)
    assert all(b["temperature"] == 0 and b["cache_prompt"] is True for b in seen)


# ---- Triton direct, against the mock LLM (a real Triton, ready in seconds) ----------------------
def test_triton_streams_send_ignore_eos_and_count_the_reported_tokens(mock_triton):
    # The mock answers with the ticket's words (12 or fewer), and past them only with ignore_eos.
    url = mock_triton.settings.grpc_url
    result = asyncio.run(bench.triton_streams(url, bench.prompts(3), 20))
    assert result["errors"] == 0 and result["tokens"] == 3 * 20, result
    assert result["prompt_tokens"] > 0 and result["itl_p50_ms"] is not None


# ---- the chart and the CLI --------------------------------------------------------------------
REPORT = {"max_tokens": 8, "threads": 2, "machine": {"cpu": "test"}, "results": RESULTS}


def test_the_chart_is_a_png(tmp_path):
    path = llm_bench_chart(REPORT, tmp_path / "charts" / "llm.png")
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 600


def test_the_cli_maps_its_options_and_writes_json_and_chart(tmp_path, monkeypatch):
    calls = []

    def fake_run(**kwargs):
        calls.append(kwargs)
        return {**REPORT, "ratios": bench.ratios(RESULTS)}

    monkeypatch.setattr(bench, "run", fake_run)
    monkeypatch.setattr(llama_server, "ensure_built", lambda: tmp_path / "built-llama-server")
    output = tmp_path / "out" / "llm.json"
    argv = ["llm", "--url", "127.0.0.1:1", "--streams", "1,2", "--max-tokens", "16"]
    assert bench_main([*argv, "--repeat", "1", "--output", str(output)]) == 0
    assert bench_main([*argv, "--skip-llama-server", "--skip-orchestrator"]) == 0
    full, skipped = calls
    assert full["concurrencies"] == [1, 2] and full["max_tokens"] == 16 and full["repeat"] == 1
    assert full["llama_server_binary"] == tmp_path / "built-llama-server"
    assert full["orchestrator_env"]["TRITON_GRPC_PORT"] == "1"
    assert skipped["llama_server_binary"] is None and skipped["orchestrator_env"] is None
    assert json.loads(output.read_text())["results"] == RESULTS
    assert image.imread(output.with_suffix(".png")).ndim == 3


def test_the_cli_says_why_llama_server_cannot_be_built(monkeypatch, capsys):
    def cannot():
        raise llama_server.BuildError("building llama-server needs cmake")

    monkeypatch.setattr(llama_server, "ensure_built", cannot)
    assert bench_main(["llm", "--streams", "1"]) == 2
    assert "needs cmake" in capsys.readouterr().err


def test_the_cache_is_git_ignored():
    root = llama_server.REPO_ROOT
    assert llama_server.CACHE.relative_to(root).parts[0] == "var"
    path = "var/llama-server/0.3.36/llama-server"
    assert subprocess.run(["git", "-C", str(root), "check-ignore", "-q", path]).returncode == 0
