"""`python -m loadtest run`: Locust headless for a bounded time, then charts and a summary.

Everything of one run lands in a timestamped folder under `loadtest/reports/`: Locust's CSV
files (with the full history), its HTML report, `throughput.png`, `latency.png`, Locust's log
and `summary.json`. Only loopback targets are accepted unless `--allow-remote` is given: a
load test pointed at someone else's server by a typo is an attack.
"""

import argparse
import ipaddress
import json
import math
import os
import re
import socket
import subprocess  # nosec B404  # runs locust, fixed argv
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from loadtest import report

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
REPORTS = Path(__file__).with_name("reports")
CSV_PREFIX = "locust"
MAX_RUN_TIME_S = 24 * 3600
_DURATION = re.compile(r"(\d+)\s*([hms])")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("classes", nargs="*", help="user classes (default: every class)")
    parser.add_argument("--users", type=int, default=10, help="concurrent users (default 10)")
    parser.add_argument(
        "--per-class",
        type=int,
        metavar="N",
        help="exactly N users of every picked class instead of --users split by weight",
    )
    parser.add_argument("--spawn-rate", type=float, default=2, help="users started per second")
    parser.add_argument("--run-time", default="60s", help="e.g. 90s, 5m, 1h30m (default 60s)")
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="the orchestrator")
    parser.add_argument(
        "--triton-url",
        default=os.environ.get("LOADTEST_TRITON_URL", "127.0.0.1:8000"),
        help="Triton's HTTP address for TritonTriageUser (env LOADTEST_TRITON_URL)",
    )
    parser.add_argument("--tags", nargs="*", default=[], help="only tasks with these tags")
    parser.add_argument("--exclude-tags", nargs="*", default=[], help="skip these tags")
    parser.add_argument("--reports-dir", type=Path, default=REPORTS)
    parser.add_argument(
        "--allow-remote", action="store_true", help="accept targets that are not loopback"
    )


def parse_run_time(text: str) -> int:
    """Seconds in `text` ("90", "90s", "5m", "1h30m"); the run must end, so it is bounded."""
    text = text.strip().lower()
    seconds = int(text) if text.isdigit() else _compound_seconds(text)
    if not 0 < seconds <= MAX_RUN_TIME_S:
        raise ValueError(f"run time {text!r} must be between 1 s and {MAX_RUN_TIME_S} s")
    return seconds


def _compound_seconds(text: str) -> int:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"run time {text!r} is not like 90s, 5m or 1h30m")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def hostname(url: str) -> str:
    """The host of `http://host:port/...` or of a bare `host:port` (as tritonclient takes)."""
    return urlsplit(url if "://" in url else f"//{url}").hostname or ""


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def refused_targets(targets: dict[str, str]) -> list[str]:
    return [f"{what} {url}" for what, url in targets.items() if not is_loopback(hostname(url))]


def report_folder(root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = root / stamp, 1
    while folder.exists():  # two runs within a second
        n += 1
        folder = root / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def listed_classes() -> list[str]:
    """The locustfile's user classes, as `locust --list` names them."""
    listing = subprocess.run(  # nosec B603  # fixed argv (our interpreter, locust), no shell
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = listing.split("Available Users:", 1)[-1].splitlines()
    return [line.strip() for line in lines if line.strip().isidentifier()]


def fixed_users(classes: list[str], per_class: int) -> list[str]:
    """Locust arguments that run exactly `per_class` users of each class (its fixed_count)."""
    config = [{"user_class_name": name, "fixed_count": per_class} for name in classes]
    return [*classes, "--config-users", json.dumps(config)]  # its nargs would take the classes


def locust_command(args, folder: Path, run_time_s: int) -> list[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{run_time_s}s", "--host", args.host,
        "--csv", str(folder / CSV_PREFIX), "--csv-full-history",
        "--html", str(folder / "report.html"), "--loglevel", "WARNING",
    ]  # fmt: skip
    if args.tags:
        command += ["--tags", *args.tags]
    if args.exclude_tags:
        command += ["--exclude-tags", *args.exclude_tags]
    if args.per_class:
        return command + fixed_users(args.classes, args.per_class)
    return command + list(args.classes)


def run(args) -> int:
    try:
        run_time_s = parse_run_time(args.run_time)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    refused = refused_targets({"--host": args.host, "--triton-url": args.triton_url})
    if refused and not args.allow_remote:
        targets = ", ".join(refused)
        print(
            f"refusing non-loopback targets: {targets} (--allow-remote if yours)", file=sys.stderr
        )
        return 2
    if args.per_class:
        args.classes = args.classes or listed_classes()
        args.users = args.per_class * len(args.classes)
    if not os.environ.get("LOADTEST_API_KEY"):
        print("warning: LOADTEST_API_KEY is not set; orchestrator requests will get 401")
    folder = report_folder(args.reports_dir)
    env = dict(os.environ, LOADTEST_TRITON_URL=args.triton_url)
    classes = " ".join(args.classes) or "all"
    print(
        f"== Locust: {args.users} users ({args.spawn_rate}/s) for {run_time_s} s "
        f"against {args.host}; classes: {classes}",
        flush=True,
    )
    exit_code = _run_locust(locust_command(args, folder, run_time_s), env, folder, run_time_s)
    return _finish(args, folder, run_time_s, exit_code)


def _run_locust(command: list[str], env: dict, folder: Path, run_time_s: int) -> int:
    """Runs Locust with its output in locust.log, printing a progress line every few seconds."""
    interval = min(5.0, max(1.0, run_time_s / 12))
    history = folder / f"{CSV_PREFIX}_stats_history.csv"
    started = time.monotonic()
    with (folder / "locust.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # nosec B603  # argv built here from our settings, no shell
        try:
            while process.poll() is None:
                time.sleep(0.2)
                if time.monotonic() - started >= interval:
                    _print_progress(history, run_time_s)
                    started += interval
        except KeyboardInterrupt:
            process.terminate()  # Locust stops users and still writes its reports
        return process.wait()


def _print_progress(history: Path, run_time_s: int) -> None:
    latest = _latest_aggregated_row(history)
    if latest is None:
        return
    elapsed = min(latest.seconds[-1], run_time_s)
    print(
        f"  [{elapsed:>4.0f}/{run_time_s} s] users {latest.users[-1]:.0f}  "
        f"{latest.requests_per_s[-1]:.1f} req/s  {latest.failures_per_s[-1]:.1f} fail/s  "
        f"p50 {_or_dash(latest.percentiles_ms['50%'][-1])} ms  "
        f"p95 {_or_dash(latest.percentiles_ms['95%'][-1])} ms",
        flush=True,
    )


def _latest_aggregated_row(history: Path):
    if not history.is_file():
        return None
    try:
        aggregated = report.read_history(history).get(report.AGGREGATED)
    except (KeyError, ValueError):  # a row half written while we read
        return None
    return aggregated if aggregated and aggregated.seconds else None


def _or_dash(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _finish(args, folder: Path, run_time_s: int, exit_code: int) -> int:
    stats = folder / f"{CSV_PREFIX}_stats.csv"
    if not stats.is_file():
        print(f"Locust wrote no statistics (exit code {exit_code}); its log:", file=sys.stderr)
        print((folder / "locust.log").read_text()[-3000:], file=sys.stderr)
        return exit_code or 1
    histories = report.read_history(folder / f"{CSV_PREFIX}_stats_history.csv")
    report.throughput_chart(histories, folder / "throughput.png")
    report.latency_chart(histories, folder / "latency.png")
    entries = report.read_stats(stats)
    summary = {
        "host": args.host,
        "triton_url": args.triton_url,
        "classes": list(args.classes),
        "tags": list(args.tags),
        "exclude_tags": list(args.exclude_tags),
        "users": args.users,
        "users_per_class": args.per_class,
        "spawn_rate": args.spawn_rate,
        "run_time_s": run_time_s,
        "locust_exit_code": exit_code,
        "entries": entries,
    }
    (folder / "summary.json").write_text(json.dumps(_no_nan(summary), indent=2) + "\n")
    print()
    print(report.summary_table(entries))
    print(f"\nreports: {folder}  (report.html, throughput.png, latency.png, CSV, summary.json)")
    if exit_code:
        print(f"Locust exit code {exit_code}: some requests failed (see {CSV_PREFIX}_failures.csv)")
    return exit_code


def _no_nan(value):
    """JSON has no NaN: an entry without samples in a percentile gets null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value
