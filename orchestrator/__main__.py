"""`python -m orchestrator up | serve | triton | worker | migrate | keys | drift`: run the stack
on loopback, manage keys, compare recent traffic with the training reference."""

import argparse
import signal
import subprocess  # nosec B404  # runs the export build, fixed argv
import sys
import threading
import time
from pathlib import Path

import httpx

from contracts.bands import bands_file
from contracts.credit import CREDIT_FILE
from contracts.models import missing_files
from contracts.xray import XRAY_FILE
from orchestrator.environments import DEFAULT_ENVIRONMENT, Environment
from orchestrator.services.security import SCOPES, mask, new_key
from orchestrator.settings import OrchestratorSettings, TritonSettings
from orchestrator.triton.launcher import TritonServer, TritonStartError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="build the model repository if missing, then serve all")
    commands.add_parser("serve", help="the orchestrator alone (Triton runs elsewhere)")
    commands.add_parser("triton", help="serve the model repository with the wheel's Triton")
    worker = commands.add_parser("worker", help="the ticket worker alone (no HTTP API)")
    worker.add_argument(
        "--metrics-port", type=int, default=9100, help="Prometheus /metrics port (0: none)"
    )
    commands.add_parser("migrate", help="bring the database to the newest schema")
    commands.add_parser(
        "drift", help="one drift pass now (DRIFT_* settings); prints its summary as JSON"
    )
    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    create = key_commands.add_parser("create", help="create a key (and its tenant if new)")
    create.add_argument("--tenant", required=True, help="tenant name")
    create.add_argument("--scopes", default="tickets:write,tickets:read,chat")
    create.add_argument(
        "--environment", choices=[e.value for e in Environment], default=DEFAULT_ENVIRONMENT
    )
    revoke = key_commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=int)
    args = parser.parse_args(argv)

    triton = TritonSettings()
    if args.command == "keys":
        return _keys(args)
    if args.command == "worker":
        from orchestrator.worker.process import run_worker

        return run_worker(OrchestratorSettings(), triton, args.metrics_port)
    if args.command == "drift":
        return _drift(OrchestratorSettings(), triton)
    if args.command == "migrate":
        from orchestrator.db.session import make_engine

        make_engine(OrchestratorSettings().database_url).dispose()
        print("database at the newest schema")
        return 0
    if args.command == "serve":
        return _serve_orchestrator(OrchestratorSettings())
    if args.command == "triton":
        return _run_until_stopped(triton, with_orchestrator=None)
    _build_missing_models(triton.model_repository)
    settings = OrchestratorSettings()
    generated = settings.admin_key is None
    if generated:
        settings = settings.model_copy(update={"admin_key": new_key()})
    return _run_until_stopped(triton, with_orchestrator=(settings, generated))


def _build_missing_models(repository: Path) -> None:
    """The quick builds of whatever the repository lacks: triage and its confidence bands,
    the x-ray classifier, the credit model."""
    missing = missing_files(repository)
    if missing:
        print(f"== model repository lacks {len(missing)} generated files; building it first")
        print("   (the quick recipe: about 2 minutes on 2 cores; `make train-full`: better)")
        _export("build", "--quick", "--repository", str(repository))
    if not (repository / bands_file(1)).is_file():
        print("== choosing triage's confidence bands (about a minute)")
        _export("bands", "--repository", str(repository))
    if not (repository / XRAY_FILE).is_file():
        print("== building the chest x-ray classifier (the quick recipe: about 2 minutes)")
        _export("xray", "--quick", "--repository", str(repository))
    if not (repository / CREDIT_FILE).is_file():
        print("== building the credit model (the quick recipe: seconds)")
        _export("credit", "--quick", "--repository", str(repository))


def _export(*arguments: str) -> None:
    command = [sys.executable, "-m", "export", *arguments]
    subprocess.run(command, check=True)  # nosec B603  # our interpreter and fixed arguments, no shell


def _stop_event() -> threading.Event:
    stop = threading.Event()
    # Set both explicitly: a shell that starts us in the background ignores SIGINT otherwise.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _run_until_stopped(triton: TritonSettings, with_orchestrator) -> int:
    stop = _stop_event()
    print(f"== starting Triton (log: {triton.log_file})", flush=True)
    try:
        with TritonServer(triton):
            print(
                f"Triton is serving {', '.join(triton.models)}\n"
                f"  HTTP     http://{triton.http_url}/v2/models/ticket_triage\n"
                f"  gRPC     {triton.grpc_url}\n"
                f"  metrics  {triton.metrics_url}",
                flush=True,
            )
            if with_orchestrator is None:
                print("Press Ctrl-C to stop.", flush=True)
                while not stop.wait(0.5):
                    pass
            else:
                _orchestrator_until_stopped(*with_orchestrator, stop)
            print("\n== stopping Triton", flush=True)
    except TritonStartError as error:
        print(f"Triton failed to start: {error}", file=sys.stderr)
        return 1
    return 0


# `make up`'s Ctrl-C: requests in flight get this long to finish; then open streams (a
# workspace's live queue, a chat stream) are closed, and their clients reconnect or retry.
SHUTDOWN_GRACE_S = 10


def _orchestrator_until_stopped(settings: OrchestratorSettings, generated: bool, stop) -> None:
    import uvicorn

    from orchestrator.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # our stop event handles Ctrl-C
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://{settings.host}:{settings.port}"
    _wait_ready(url, stop)
    print(f"\nOrchestrator ready at {url}  (API docs: {url}/docs)", flush=True)
    print(f"Agent workspace: {url}/app  (sign in with a key holding tickets:read)", flush=True)
    if generated:
        print("Admin API key (shown once; set ORCHESTRATOR_ADMIN_KEY to choose one):")
        print(f"  {settings.admin_key}")
    else:
        print(f"Admin API key: from ORCHESTRATOR_ADMIN_KEY ({mask(settings.admin_key)})")
    print("Press Ctrl-C to stop.", flush=True)
    while not stop.wait(0.5):
        pass
    print("\n== stopping the orchestrator", flush=True)
    server.should_exit = True
    thread.join(30)


def _wait_ready(url: str, stop, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    if not stop.is_set():
        raise TritonStartError(f"the orchestrator at {url} was not ready after {timeout_s} s")


def _serve_orchestrator(settings: OrchestratorSettings) -> int:
    import uvicorn

    from orchestrator.app import create_app

    # no grace limit: a container's stop period bounds it (chat streams may finish; the
    # workspace's live queues end by themselves within ORCHESTRATOR_WEB_EVENTS_STREAM_S)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
    return 0


def _drift(settings: OrchestratorSettings, triton: TritonSettings) -> int:
    """One pass with the worker's code; exit 0 even when no scope had enough tickets (the
    summary lists them as skipped), 1 when Triton failed or the reference's texts are missing."""
    import asyncio

    from orchestrator.db.session import make_engine, session_factory
    from orchestrator.services.drift.monitor import DriftMonitor
    from orchestrator.settings import DriftSettings
    from orchestrator.triton.embed_client import EmbeddingClient
    from orchestrator.triton.triage_client import TriageClient, TritonUnavailable

    async def one_pass():
        triage = TriageClient(triton.grpc_url, timeout_s=settings.triage_timeout_s)
        embedder = EmbeddingClient(triton.grpc_url)
        try:
            monitor = DriftMonitor(sessions, triage, embedder, DriftSettings())
            return await monitor.run_pass()
        finally:
            await triage.close()
            await embedder.close()

    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        result = asyncio.run(one_pass())
    except TritonUnavailable as error:
        print(f"Triton at {triton.grpc_url} could not answer: {error}", file=sys.stderr)
        return 1
    except FileNotFoundError as error:  # the reference's texts: Banking77 is not shipped
        print(f"{error}; set DRIFT_REFERENCE_CSV to Banking77's test.csv", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(result.summary().model_dump_json(indent=2))
    return 0


def _keys(args) -> int:
    from sqlalchemy import select

    from orchestrator.api.revocations import publish_sync
    from orchestrator.db.models import Tenant
    from orchestrator.db.session import make_engine, session_factory
    from orchestrator.services import keys

    settings = OrchestratorSettings()
    sessions = session_factory(make_engine(settings.database_url))
    with sessions() as session:
        if args.action == "revoke":
            if not keys.revoke_key(session=session, key_id=args.key_id):
                print(f"no active key {args.key_id}", file=sys.stderr)
                return 1
            shared = publish_sync(settings.redis_url, settings.redis_prefix)
            print(f"revoked key {args.key_id}")
            if not shared:  # without Redis, replicas trust their cached entry until it expires
                print(f"(running replicas may accept it for up to {settings.key_cache_s:g} s)")
            return 0
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            print(f"unknown scopes {unknown}; use {list(SCOPES)}", file=sys.stderr)
            return 2
        tenant = session.scalar(select(Tenant).where(Tenant.name == args.tenant))
        if tenant is None and keys.is_reserved(args.tenant):
            print(f"{args.tenant!r} is reserved for the platform tenant", file=sys.stderr)
            return 2
        tenant = tenant or keys.create_tenant(session=session, name=args.tenant)
        try:
            record, key = keys.create_key(
                session=session,
                tenant_id=tenant.id,
                scopes=scopes,
                origin="cli",
                environment=Environment(args.environment),
            )
        except keys.NotAllowed as refused:
            print(str(refused), file=sys.stderr)
            return 2
        print(
            f"key {record.id} for tenant {tenant.name!r} (id {tenant.id}), scopes {scopes},"
            f" environment {record.environment}:"
        )
        print(f"  {key}\n(shown once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
