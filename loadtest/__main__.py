"""`python -m loadtest run ...`: a bounded, headless Locust run with charts and a summary.

The side-by-side benchmarks are `python -m loadtest.bench triage|llm`.
"""

import argparse
import sys

from loadtest import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    locust = commands.add_parser(
        "run", help="Locust headless against the orchestrator (and Triton)",
        description=run.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_arguments(locust)
    args = parser.parse_args(argv)
    return run.run(args)


if __name__ == "__main__":
    sys.exit(main())
