"""`python -m orchestrator up | triton`: run the stack on loopback."""

import argparse
import signal
import subprocess
import sys
import threading

from export.repository import missing_files
from orchestrator.settings import TritonSettings
from orchestrator.triton.launcher import TritonServer, TritonStartError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build the model repository if missing, then serve")
    up.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs of a first build")
    commands.add_parser("triton", help="serve the model repository with the wheel's Triton")
    args = parser.parse_args(argv)

    settings = TritonSettings()
    if args.command == "up":
        missing = missing_files(settings.model_repository)
        if missing:
            print(f"== model repository lacks {len(missing)} generated files; building it first")
            print("   (about 8 minutes on 2 cores; `make train-full` is the longer, better run)")
            build = [sys.executable, "-m", "export", "build", "--epochs", str(args.epochs)]
            subprocess.run([*build, "--repository", str(settings.model_repository)], check=True)
    return serve(settings)


def serve(settings: TritonSettings) -> int:
    stop = threading.Event()
    # Set both explicitly: a shell that starts us in the background ignores SIGINT otherwise.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"== starting Triton (log: {settings.log_file})", flush=True)
    try:
        with TritonServer(settings):
            print(
                f"Triton is serving {', '.join(settings.models)}\n"
                f"  HTTP     http://{settings.http_url}/v2/models/ticket_triage\n"
                f"  gRPC     {settings.grpc_url}\n"
                f"  metrics  {settings.metrics_url}\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
            while not stop.wait(0.5):
                pass
            print("\n== stopping Triton", flush=True)
    except TritonStartError as error:
        print(f"Triton failed to start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
