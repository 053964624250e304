"""`python -m loadtest.bench triage|xray|credit|llm|drafts ...`: side-by-side benchmarks printing
JSON."""

import argparse
import json
import sys
import time
from pathlib import Path

from contracts.runtime import usable_cores
from loadtest.bench.llama_server import BuildError
from orchestrator.settings import TritonSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    triage = commands.add_parser("triage", help="the triage path, side by side")
    _served_path_arguments(triage, concurrency="1,8,32", requests=1000)
    triage.add_argument(
        "--mixed-requests",
        type=int,
        default=300,
        help="one-text requests sent while 64-text batches run, per priority",
    )
    triage.add_argument("--texts", type=int, default=1024, help="Banking77 test texts used")
    triage.add_argument(
        "--no-http", action="store_true", help="skip the orchestrator and plain FastAPI variants"
    )
    xray = commands.add_parser(
        "xray", help="the x-ray path: served accuracy, then speed against the in-process ceiling"
    )
    _served_path_arguments(xray, concurrency="1,8", requests=400)
    xray.add_argument(
        "--chart", type=Path, help="the confusion matrix PNG (default: --output's, as .png)"
    )
    credit = commands.add_parser(
        "credit",
        help="the credit path: served AUC, one applicant's latency, batches of 1,000 against "
        "the in-process ceiling",
    )
    _served_path_arguments(credit, concurrency="1,8", requests=400)
    heat = commands.add_parser(
        "xray-heatmap", help="the heatmap's occlusion patch sizes: time and faithfulness"
    )
    heat.add_argument("--repository", type=Path, help="model repository (default: the project's)")
    heat.add_argument("--images", type=int, default=200, help="test images used")
    heat.add_argument("--output", type=Path, help="also write the JSON here")
    llm = commands.add_parser(
        "llm", help="the LLM path against llama.cpp's batch decode and llama-server"
    )
    llm.add_argument("--url", help="Triton gRPC address (default from TRITON_* settings)")
    llm.add_argument("--repository", type=Path, help="model repository Triton serves")
    llm.add_argument("--streams", default="1,4,16", help="concurrent streams, comma-separated")
    llm.add_argument("--max-tokens", type=int, default=64, help="generated per stream, exactly")
    llm.add_argument("--threads", type=int, default=0, help="0: every usable core")
    llm.add_argument("--skip-llama-server", action="store_true", help="leave llama-server out")
    llm.add_argument(
        "--llama-server-binary",
        type=Path,
        help="a llama-server to run (default: built from llama-cpp-python's sdist, cached "
        "under var/llama-server/)",
    )
    llm.add_argument(
        "--skip-orchestrator", action="store_true", help="leave /v1/chat/completions out"
    )
    llm.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    llm.add_argument("--output", type=Path, help="also write the JSON here")
    llm.add_argument("--chart", type=Path, help="the PNG (default: --output's, as .png)")
    signals = commands.add_parser(
        "signals", help="language, sentiment and auto-reply flags on the labelled sets"
    )
    signals.add_argument("--output", type=Path, help="also write the JSON here")
    drafts = commands.add_parser("drafts", help="the draft evaluation: every check scored")
    drafts.add_argument("--url", help="a running Triton's gRPC address (default: start one)")
    drafts.add_argument("--strategies", default="composed", help="composed,freeform")
    drafts.add_argument("--concurrency", type=int, default=4, help="drafts at once")
    drafts.add_argument("--limit", type=int, help="only the first N tickets")
    drafts.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    settings = TritonSettings()
    commands_run = {
        "llm": _llm,
        "triage": _triage,
        "xray": _xray,
        "credit": _credit,
        "drafts": _drafts,
        "xray-heatmap": _xray_heatmap,
        "signals": _signals,
    }
    try:
        report = commands_run[args.command](args, settings)
    except BuildError as error:
        print(f"llama-server: {error}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    chart = getattr(args, "chart", None) or (args.output and args.output.with_suffix(".png"))
    if args.command == "llm" and chart:
        from loadtest.report import llm_bench_chart

        print(f"chart: {llm_bench_chart(report, chart)}", file=sys.stderr)
    return 0


def _served_path_arguments(command, concurrency: str, requests: int) -> None:
    """What the triage and x-ray benches share: the Triton they call, the load, the rounds."""
    command.add_argument("--url", help="Triton gRPC address (default from TRITON_* settings)")
    command.add_argument("--repository", type=Path, help="model repository Triton serves")
    command.add_argument("--concurrency", default=concurrency, help="comma-separated")
    command.add_argument("--requests", type=int, default=requests, help="requests per measurement")
    command.add_argument(
        "--queue-delays",
        default="",
        help="microseconds, comma-separated (default: the repository's own queue delay)",
    )
    command.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    command.add_argument("--output", type=Path, help="also write the JSON here")


def _served_path(args, settings: TritonSettings) -> dict:
    """The `bench.run` arguments both served-path benches take, from `_served_path_arguments`."""
    from loadtest.bench.triage import orchestrator_triton_env

    url = args.url or settings.grpc_url
    repository = args.repository or settings.model_repository
    return {
        "url": url,
        "repository": repository,
        "concurrencies": [int(c) for c in args.concurrency.split(",")],
        "requests": args.requests,
        "queue_delays": [int(d) for d in args.queue_delays.split(",") if d],
        "repeat": args.repeat,
        "triton_env": orchestrator_triton_env(url, repository, settings),
    }


def _llm(args, settings: TritonSettings) -> dict:
    from loadtest.bench import llm as bench
    from loadtest.bench.llama_server import ensure_built
    from loadtest.bench.triage import orchestrator_triton_env

    url = args.url or settings.grpc_url
    binary = None
    if not args.skip_llama_server:
        binary = args.llama_server_binary or ensure_built()  # built once, then cached
    orchestrator_env = None
    if not args.skip_orchestrator:
        repository = args.repository or settings.model_repository
        orchestrator_env = orchestrator_triton_env(url, repository, settings)
    return bench.run(
        url=url,
        orchestrator_env=orchestrator_env,
        concurrencies=[int(n) for n in args.streams.split(",")],
        max_tokens=args.max_tokens,
        threads=args.threads or usable_cores(),
        repeat=args.repeat,
        llama_server_binary=binary,
    )


def _signals(args, settings: TritonSettings) -> dict:
    from loadtest.bench import signals as bench

    return bench.run()


def _triage(args, settings: TritonSettings) -> dict:
    from loadtest.bench import triage as bench

    return bench.run(
        **_served_path(args, settings),
        mixed_requests=args.mixed_requests,
        texts_limit=args.texts,
        http_variants=not args.no_http,
    )


def _xray(args, settings: TritonSettings) -> dict:
    from loadtest.bench import xray as bench

    chart = args.chart or (args.output and args.output.with_suffix(".png"))
    return bench.run(**_served_path(args, settings), chart=chart)


def _credit(args, settings: TritonSettings) -> dict:
    from loadtest.bench import credit as bench

    return bench.run(**_served_path(args, settings))


def _xray_heatmap(args, settings: TritonSettings) -> dict:
    from loadtest.bench import xray_heatmap

    return xray_heatmap.run(args.repository or settings.model_repository, args.images)


def _drafts(args, settings: TritonSettings) -> dict:
    from loadtest.bench import drafts as bench
    from loadtest.machine import command_line, machine_facts

    options = {
        "strategies": args.strategies.split(","),
        "concurrency": args.concurrency,
        "limit": args.limit,
    }
    started = time.perf_counter()
    if args.url:
        results = bench.run(url=args.url, **options)
    else:
        with bench.triton_with_llm(settings) as url:
            results = bench.run(url=url, **options)
    return {
        "benchmark": "drafts",
        "command": command_line(),
        "machine": machine_facts(),
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }


if __name__ == "__main__":
    sys.exit(main())
