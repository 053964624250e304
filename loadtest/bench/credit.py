"""`python -m loadtest.bench credit`: the credit path measured, in one run.

- accuracy through the served path: every Taiwan test applicant (ID above 24,000) sent to
  `POST /v1/credit/scores` in calls of 1,000, of an orchestrator the bench starts itself
  (uvicorn, SQLite in a temporary folder, a key made through /v1/admin) in front of the running
  Triton: AUC, KS, Brier score and calibration; the scorecard's AUC beside it, in process (it
  is the baseline, not served);
- one applicant per call: latency at `--concurrency` clients, through the orchestrator and
  through Triton's `credit_scoring` directly, the latter with dynamic batching off and at each
  `--queue-delays` (credit_features and credit_model reloaded with that delay; the
  repository's own configs come back after): what chose the committed delay;
- 1,000 applicants per call: applicants per second through the orchestrator and Triton, and
  the ceiling: the installed ONNX file run in process by ONNX Runtime with every core on the
  same features in batches of 1,000.
Every speed measurement is repeated `--repeat` times, round by round; medians are reported.
"""

import asyncio
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpc

from contracts.credit import (
    CREDIT_ENSEMBLE,
    CREDIT_FEATURES_MODEL,
    CREDIT_FILE,
    CREDIT_MAX_BATCH,
    CREDIT_MODEL,
    FIELD_NAMES,
)
from contracts.runtime import ort_session, usable_cores
from export.credit.data import load_taiwan
from export.credit.metrics import report as credit_report
from export.credit.onnx_files import INPUT, outputs
from export.settings import ExportSettings
from loadtest.bench import servers
from loadtest.bench.client import median_of_runs, run_closed_loop
from loadtest.bench.triage import reload_steps, repository_queue_delay
from loadtest.machine import command_line, machine_facts

SCOPES = ("credit:score", "credit:read")
P95_AIM_MS = 20.0  # one applicant through the orchestrator (issue 19)
BATCH_CALLS = 6  # calls of 1,000 applicants per throughput measurement
BATCHED_STEPS = (CREDIT_FEATURES_MODEL, CREDIT_MODEL)


def run(*, url: str, repository: Path, concurrencies: list[int], requests: int, repeat: int,
        triton_env: dict[str, str], queue_delays: list[int] | None = None) -> dict:  # fmt: skip
    """The accuracy pass, then `repeat` rounds of the speed measurements."""
    test = load_taiwan(ExportSettings().credit_dir)["test"]
    repository_delay = repository_queue_delay(repository, CREDIT_MODEL)
    delays = queue_delays or [repository_delay]
    variants = {"batching_off": None} | {f"queue_delay_{d}us": d for d in delays}
    rows = test.fields[list(FIELD_NAMES)].to_numpy(dtype=np.int64)
    applicants = [dict(zip(FIELD_NAMES, map(int, row), strict=True)) for row in rows]
    measured: dict = defaultdict(list)
    ceilings = []
    with servers.orchestrator(triton_env, scopes=SCOPES, ready_path="/healthz") as served:
        accuracy = asyncio.run(_served_accuracy(served, applicants, test.labels))
        accuracy["scorecard_in_process"] = _scorecard_auc(test)
        for round_number in range(1, repeat + 1):
            ceilings.append(ceiling(repository / CREDIT_FILE, test.features))
            for c in concurrencies:
                measured[("orchestrator_one", c)].append(
                    asyncio.run(_orchestrator_run(served, applicants, 1, c, requests))
                )
            _triton_round(url, repository, rows, variants, concurrencies, requests, measured)
            measured["orchestrator_1000"].append(
                asyncio.run(_orchestrator_run(served, applicants, CREDIT_MAX_BATCH, 1, BATCH_CALLS))
            )
            measured["triton_1000"].append(
                asyncio.run(_triton_run(url, rows, CREDIT_MAX_BATCH, 1, BATCH_CALLS))
            )
            print(f"round {round_number}/{repeat}: ceiling {ceilings[-1]:.0f} applicants/s, "
                  + ", ".join(f"{key}: {runs[-1]['throughput_per_s']}/s p95 {runs[-1]['p95_ms']} ms"
                              for key, runs in measured.items()), flush=True)  # fmt: skip
    one_applicant = {
        name: {str(c): median_of_runs(measured[(name, c)]) for c in concurrencies}
        for name in ("orchestrator_one", *(f"triton_one_{v}" for v in variants))
    }
    ceiling_rate = float(np.median(ceilings))
    batches = {
        name: _per_applicant(median_of_runs(measured[f"{name}_1000"]))
        for name in ("orchestrator", "triton")
    }
    result = {
        "benchmark": "credit",
        "command": command_line(),
        "machine": machine_facts(),
        "applicants": len(applicants),
        "requests_per_measurement": requests,
        "repeat": repeat,
        "statistic": f"median of {repeat} rounds",
        "served_accuracy": accuracy,
        "ceiling_in_process_applicants_per_s": round(ceiling_rate, 1),
        "ceiling_each_run": [round(c, 1) for c in ceilings],
        "repository_queue_delay_us": repository_delay,
        "one_applicant": one_applicant,
        "batches_of_1000": batches,
    }
    one = result["one_applicant"]["orchestrator_one"]
    result["ratios"] = {
        "orchestrator_to_ceiling_batches_of_1000": round(
            batches["orchestrator"]["applicants_per_s"] / ceiling_rate, 3
        ),
        "triton_to_ceiling_batches_of_1000": round(
            batches["triton"]["applicants_per_s"] / ceiling_rate, 3
        ),
        "orchestrator_one_applicant_p95_within_aim": {
            c: figures["p95_ms"] < P95_AIM_MS for c, figures in one.items()
        },
        "triton_one_applicant_throughput_to_batching_off": {
            variant: {
                c: round(
                    one_applicant[f"triton_one_{variant}"][c]["throughput_per_s"]
                    / one_applicant["triton_one_batching_off"][c]["throughput_per_s"],
                    3,
                )
                for c in one_applicant["triton_one_batching_off"]
            }
            for variant in variants
            if variant != "batching_off"
        },
    }
    return result


def _triton_round(url, repository, rows, variants, concurrencies, requests, measured) -> None:
    """Triton direct, one applicant a call, each batching variant in turn; the repository's
    configs come back after."""
    client = grpcclient.InferenceServerClient(url)
    try:
        for name, delay in variants.items():
            reload_steps(client, repository, delay, BATCHED_STEPS)
            for c in concurrencies:
                measured[(f"triton_one_{name}", c)].append(
                    asyncio.run(_triton_run(url, rows, 1, c, requests))
                )
    finally:
        delay = repository_queue_delay(repository, CREDIT_MODEL)
        reload_steps(client, repository, delay, BATCHED_STEPS)
        client.close()


async def _served_accuracy(served, applicants: list[dict], labels: np.ndarray) -> dict:
    """Every applicant through POST /v1/credit/scores in calls of 1,000; the issue's figures."""
    probabilities, decisions = [], defaultdict(int)
    async with _client(served) as client:
        for start in range(0, len(applicants), CREDIT_MAX_BATCH):
            results = await _post(client, applicants[start : start + CREDIT_MAX_BATCH])
            probabilities += [r["probability_of_default"] for r in results]
            for r in results:
                decisions[r["decision"]] += 1
    report = credit_report(np.array(probabilities), labels)
    return {**report, "decisions_under_the_default_policy": dict(decisions)}


def _scorecard_auc(test) -> dict | str:
    """The scorecard baseline's test figures, from the file `export credit` wrote."""
    file = ExportSettings().work_dir / "credit" / "credit.scorecard.onnx"
    if not file.is_file():
        return f"not measured: {file} is missing (run `python -m export credit`)"
    probabilities = outputs(file, test.features)["probability"][:, 0]
    found = credit_report(probabilities, test.labels)
    return {k: found[k] for k in ("auc", "ks", "brier", "calibration_error")}


def ceiling(onnx_file: Path, features: np.ndarray) -> float:
    """Applicants per second in process: the ONNX file on batches of 1,000, every core."""
    session = ort_session(onnx_file, usable_cores())
    started = time.perf_counter()
    for start in range(0, len(features), CREDIT_MAX_BATCH):
        session.run(None, {INPUT: features[start : start + CREDIT_MAX_BATCH]})
    return len(features) / (time.perf_counter() - started)


async def _orchestrator_run(served, applicants, size: int, concurrency: int, calls: int) -> dict:
    async with _client(served) as client:

        async def call(i: int) -> None:
            start = (i * size) % (len(applicants) - size + 1)
            await _post(client, applicants[start : start + size])

        result = await run_closed_loop(call, calls, concurrency)
    return {**result.summary(usable_cores()), "applicants_per_call": size}


async def _triton_run(url: str, rows: np.ndarray, size: int, concurrency: int, calls: int):
    client = aio_grpc.InferenceServerClient(url)
    try:

        async def call(i: int) -> None:
            start = (i * size) % (len(rows) - size + 1)
            tensor = aio_grpc.InferInput("fields", [size, len(FIELD_NAMES)], "INT64")
            tensor.set_data_from_numpy(rows[start : start + size])
            await client.infer(CREDIT_ENSEMBLE, [tensor])

        result = await run_closed_loop(call, calls, concurrency)
    finally:
        await client.close()
    return {**result.summary(usable_cores()), "applicants_per_call": size}


def _per_applicant(figures: dict) -> dict:
    size = figures.get("applicants_per_call", CREDIT_MAX_BATCH)
    return {
        **figures,
        "applicants_per_s": round(figures["throughput_per_s"] * size, 1),
    }


def _client(served) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=served.base_url,
        headers={"X-API-Key": served.api_key},
        timeout=120,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


async def _post(client: httpx.AsyncClient, applicants: list[dict]) -> list[dict]:
    response = await client.post("/v1/credit/scores", json={"applicants": applicants})
    response.raise_for_status()
    return response.json()["results"]
