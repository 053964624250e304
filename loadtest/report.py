"""Charts and a summary table from Locust's CSV files (`--csv PREFIX --csv-full-history`), and
the LLM bench's chart."""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt

AGGREGATED = "Aggregated"
PERCENTILES = ("50%", "95%", "99%")


@dataclass
class History:
    """One entry's rows of `<prefix>_stats_history.csv`, times in seconds from the start."""

    seconds: list[float]
    users: list[float]
    requests_per_s: list[float]
    failures_per_s: list[float]
    percentiles_ms: dict[str, list[float]]


def _number(value: str) -> float:
    """Locust writes N/A where a window had no requests; NaN leaves a gap in the line."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _empty_history() -> History:
    return History([], [], [], [], {p: [] for p in PERCENTILES})


def read_history(path: Path) -> dict[str, History]:
    """Rows by entry ("TYPE name", or "Aggregated" for the whole run)."""
    by_entry: dict[str, History] = {}
    start = None
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            stamp = _number(row["Timestamp"])
            start = stamp if start is None else start
            name = AGGREGATED if row["Name"] == AGGREGATED else f"{row['Type']} {row['Name']}"
            history = by_entry.setdefault(name, _empty_history())
            history.seconds.append(stamp - start)
            history.users.append(_number(row["User Count"]))
            history.requests_per_s.append(_number(row["Requests/s"]))
            history.failures_per_s.append(_number(row["Failures/s"]))
            for p in PERCENTILES:
                history.percentiles_ms[p].append(_number(row[p]))
    return by_entry


def throughput_chart(histories: dict[str, History], path: Path) -> Path:
    """Requests/s over time: the whole run, its failures, each entry, and the users running."""
    figure, axis = plt.subplots(figsize=(11, 5.5))
    total = histories.get(AGGREGATED)
    for name, history in histories.items():
        if name != AGGREGATED:
            axis.plot(history.seconds, history.requests_per_s, linewidth=1, label=name)
    if total is not None:
        axis.plot(total.seconds, total.requests_per_s, "k", linewidth=2.2, label="all requests")
        axis.plot(total.seconds, total.failures_per_s, "r--", linewidth=1.5, label="failures")
        users = axis.twinx()
        users.plot(total.seconds, total.users, color="grey", linestyle=":", label="users")
        users.set_ylabel("users")
    axis.set(xlabel="seconds since start", ylabel="requests/s", title="Throughput")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    return _save(figure, path)


def latency_chart(histories: dict[str, History], path: Path) -> Path:
    """p50/p95/p99 over time: the whole run on top, then one small panel per entry."""
    names = [AGGREGATED, *(n for n in histories if n != AGGREGATED)]
    names = [n for n in names if n in histories]
    columns = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(12, 2.8 * rows + 0.6), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        history = histories[name]
        for p in PERCENTILES:
            axis.plot(history.seconds, history.percentiles_ms[p], label=f"p{p[:-1]}")
        axis.set_title("all requests" if name == AGGREGATED else name, fontsize=9)
        axis.set_ylabel("ms")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    axes.flat[-1].set_xlabel("seconds since start")
    figure.suptitle("Latency percentiles (Locust's current window)")
    return _save(figure, path, top=1 - 0.5 / figure.get_figheight())


def _save(figure, path: Path, top: float = 1.0) -> Path:
    figure.tight_layout(rect=(0, 0, 1, top))  # room for a suptitle above the panels
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def read_stats(path: Path) -> list[dict]:
    """The final figures per entry from `<prefix>_stats.csv`, in milliseconds."""
    with path.open(newline="") as f:
        return [
            {
                "type": row["Type"],
                "name": row["Name"],
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "requests_per_s": round(_number(row["Requests/s"]), 2),
                "p50_ms": _number(row["50%"]),
                "p95_ms": _number(row["95%"]),
                "p99_ms": _number(row["99%"]),
            }
            for row in csv.DictReader(f)
        ]


def summary_table(entries: list[dict]) -> str:
    header = f"{'type':<7} {'name':<34} {'requests':>8} {'fails':>6} {'req/s':>7} "
    header += f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    lines = [header, "-" * len(header)]
    for e in entries:
        lines.append(
            f"{e['type']:<7} {e['name'][:34]:<34} {e['requests']:>8} {e['failures']:>6} "
            f"{e['requests_per_s']:>7.1f} {_ms(e['p50_ms'])} {_ms(e['p95_ms'])} {_ms(e['p99_ms'])}"
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{'-':>8}" if math.isnan(value) else f"{value:>8.0f}"


# ---- the LLM bench (`python -m loadtest.bench llm`) ------------------------------------------
LLM_SIDE_LABELS = {
    "ceiling": "ceiling: llama.cpp batch decode in process",
    "llama_server": "llama-server --parallel 16",
    "triton": "Triton llm (gRPC)",
    "orchestrator": "orchestrator /v1/chat/completions",
}
TTFT_AIM_MS = 1000


def llm_bench_chart(report: dict, path: Path) -> Path:
    """Tokens/s by number of streams, one line per side; TTFT p95 beside it, bars per side."""
    results = report["results"]
    streams = sorted(int(n) for n in results)
    sides = [s for s in LLM_SIDE_LABELS if any(s in results[str(n)] for n in streams)]
    sides += [s for n in streams for s in results[str(n)] if s not in sides]
    figure, (rate, ttft) = plt.subplots(1, 2, figsize=(13, 5.2))
    width = 0.8 / max(len(sides), 1)
    for i, side in enumerate(sides):
        label = LLM_SIDE_LABELS.get(side, side)
        measured = [n for n in streams if side in results[str(n)]]
        rate.plot(
            measured,
            [results[str(n)][side]["tokens_per_s"] for n in measured],
            marker="o",
            linewidth=2.2 if side == "ceiling" else 1.6,
            linestyle="--" if side == "ceiling" else "-",
            label=label,
        )
        positions = [streams.index(n) + (i - (len(sides) - 1) / 2) * width for n in measured]
        values = [results[str(n)][side]["ttft_p95_ms"] or 0 for n in measured]
        ttft.bar(positions, values, width, label=label)
    rate.set_xscale("log", base=2)
    rate.set_xticks(streams, [str(n) for n in streams])
    rate.set(xlabel="concurrent streams", ylabel="generated tokens/s", title="Throughput")
    rate.set_ylim(bottom=0)
    ttft.set_xticks(range(len(streams)), [str(n) for n in streams])
    ttft.axhline(TTFT_AIM_MS, color="red", linestyle=":", linewidth=1.2, label="aim: 1 s")
    ttft.set(xlabel="concurrent streams", ylabel="ms", title="Time to first token, p95")
    for axis in (rate, ttft):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    machine = report.get("machine", {})
    figure.suptitle(
        f"LLM side by side: {report.get('max_tokens')} tokens per stream, EOS ignored, "
        f"{report.get('threads')} threads, {machine.get('cpu', '?')}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(figure, path, top=1 - 0.25 / figure.get_figheight())
