"""`python -m loadtest run|evaluate ...`: a bounded, headless Locust run with charts and a
summary, or Banking77's test split through the running Triton.

The side-by-side benchmarks are `python -m loadtest.bench triage|llm`.
"""

import argparse
import json
import sys
from pathlib import Path

from loadtest import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    locust = commands.add_parser(
        "run", help="Locust headless against the orchestrator (and Triton)",
        description=run.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_arguments(locust)
    evaluate = commands.add_parser(
        "evaluate", help="Banking77 test split through the running Triton"
    )
    evaluate.add_argument(
        "--url", default=None, help="Triton gRPC address (default from TRITON_* settings)"
    )
    evaluate.add_argument("--versions", default="1,2", help="ticket_encoder versions to compare")
    evaluate.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    evaluate.add_argument("--limit", type=int, help="first N test texts only")
    evaluate.add_argument("--output", type=Path, help="also write the JSON here")
    evaluate.add_argument(
        "--no-api",
        action="store_true",
        help="skip the pass through the orchestrator's POST /v1/triage (Triton only)",
    )

    args = parser.parse_args(argv)
    if args.command == "evaluate":
        return _evaluate(args)
    return run.run(args)


def _evaluate(args) -> int:
    from export.settings import ExportSettings
    from loadtest.evaluate import evaluate_through_triton

    settings = ExportSettings()
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    result = evaluate_through_triton(
        settings,
        url=args.url,
        versions=versions,
        concurrency=args.concurrency,
        limit=args.limit,
        through_api=not args.no_api,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
