"""`python -m loadtest.bench triage`: the triage path side by side, in one run.

- ceiling: in process with ONNX Runtime at the best batch, both ways the files run: the
  tokenizers package with the INT8 encoder and the head, and the fused `ticket_intent` file;
- Triton's `ticket_triage` ensemble (its one step: `ticket_intent`) called directly over gRPC
  at each concurrency, with dynamic batching switched off (configs reloaded without
  `dynamic_batching`), then on with each `--queue-delays` value (default: the repository's
  own); and `ticket_triage_steps`, the three steps chained as before the fusion, with the
  repository's configs (loaded for its turn, unloaded after);
- orchestrator: `POST /v1/triage`, one text per request, through the orchestrator the bench
  starts itself (uvicorn, SQLite in a temporary folder, a key made through /v1/admin) in
  front of the same Triton with the repository's own configs;
- orchestrator_uncoalesced: the same with `triage_coalesce_in_flight` 0, every call its own
  Triton request (the default joins concurrent calls: orchestrator/triton/coalesce.py);
- plain_fastapi: the design a team would otherwise pick, a FastAPI app running the same
  ONNX files in process per request (loadtest/bench/plain_fastapi.py), one text per request;
- one text under batches: one-text calls to `ticket_triage` (the interactive priority level,
  as `POST /v1/triage` sends; ignored while the model sets no priority levels) while batches
  keep Triton busy: one caller sending the worker's default batch (`worker_batch`, 8 texts),
  as the one worker does, and two callers sending the most it may send (64 texts each).
Both HTTP servers get one uvicorn worker. Every measurement is repeated `--repeat` times,
the variants interleaved round by round, and each figure's median is reported.
"""

import asyncio
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpc

from contracts.models import (
    CLASSIFIER_FILE,
    ENCODER_FILES,
    INTENT_FILE,
    INTENT_MODEL,
    TRIAGE_MAX_BATCH,
)
from contracts.runtime import ort_session
from contracts.tokens import encode_batch
from export.data import load_banking77
from export.metrics import latency_summary
from export.model import load_tokenizer
from export.settings import ExportSettings
from loadtest.bench import servers
from loadtest.bench.client import median_of_runs, run_closed_loop
from loadtest.bench.plain_fastapi import SESSION_THREADS
from loadtest.machine import command_line, machine_facts
from orchestrator.settings import OrchestratorSettings, TritonSettings
from orchestrator.triton.model_config import load_json, read_config
from orchestrator.triton.triage_client import BACKGROUND, INTERACTIVE

# The orchestrator with each /v1/triage call its own Triton request, beside the default (its
# concurrent calls joined: orchestrator/triton/coalesce.py)
UNCOALESCED = "orchestrator_uncoalesced"
COALESCING_SETTING = "ORCHESTRATOR_TRIAGE_COALESCE_IN_FLIGHT"
BATCHED_STEPS = (INTENT_MODEL,)  # what ticket_triage runs
STEPS_ENSEMBLE = "ticket_triage_steps"  # the three steps chained
STEP_MODELS = ("ticket_tokenizer", "ticket_encoder", "ticket_classifier")


def ceiling(repository: Path, texts: list[str], batch_sizes=(1, 8, 32)) -> dict:
    """In-process ONNX Runtime, texts grouped by length, each way the files run ("steps": the
    tokenizers package, the encoder, the head; "fused": ticket_intent); the best wins."""
    tokenizer = load_tokenizer(128)
    encoder = ort_session(repository / ENCODER_FILES["int8"], SESSION_THREADS)
    classifier = ort_session(repository / CLASSIFIER_FILE, SESSION_THREADS)
    fused = ort_session(repository / INTENT_FILE, SESSION_THREADS)

    def steps(batch: list[str]) -> None:
        ids, mask = encode_batch(tokenizer, batch)
        feeds = {"input_ids": ids, "attention_mask": mask}
        classifier.run(["intent"], {"embedding": encoder.run(None, feeds)[0]})

    def one_file(batch: list[str]) -> None:
        fused.run(["intent"], {"text": np.array(batch, dtype=object).reshape(-1, 1)})

    ordered = sorted(texts, key=len)
    by_batch = {}
    for way, infer in (("steps", steps), ("fused", one_file)):
        for size in batch_sizes:
            started = time.perf_counter()
            for start in range(0, len(ordered), size):
                infer(ordered[start : start + size])
            by_batch[f"{way}_{size}"] = round(len(texts) / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return {
        "texts_per_s_by_batch": by_batch,
        "best_batch": best,
        "throughput_per_s": by_batch[best],
    }


def median_ceiling(runs: list[dict]) -> dict:
    """Median texts/s per batch size over the rounds; the best median batch wins."""
    by_batch = median_of_runs([r["texts_per_s_by_batch"] for r in runs], each=None)
    best = max(by_batch, key=by_batch.get)
    return {
        "texts_per_s_by_batch": by_batch,
        "best_batch": best,
        "throughput_per_s": by_batch[best],
        "throughput_per_s_each_run": [r["throughput_per_s"] for r in runs],
    }


def repository_queue_delay(repository: Path, model: str = "ticket_encoder") -> int:
    """The model's committed queue delay (the encoder's by default): what the orchestrator's
    Triton runs with."""
    return read_config(repository / model).dynamic_batching.max_queue_delay_microseconds


def _config(repository: Path, model: str, queue_delay_us: int | None) -> str:
    """The model's committed config; no dynamic batching when `queue_delay_us` is None."""
    config = read_config(repository / model)
    if queue_delay_us is None:
        config.ClearField("dynamic_batching")
    else:
        config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    return load_json(config)


def reload_steps(
    client, repository: Path, queue_delay_us: int | None, models=BATCHED_STEPS
) -> None:
    for model in models:
        client.load_model(model, config=_config(repository, model, queue_delay_us))


async def ensemble_run(
    url: str, texts: list[str], concurrency: int, total: int, model: str = "ticket_triage"
) -> dict:
    client = aio_grpc.InferenceServerClient(url)
    encoded = [np.array([[t.encode()]], dtype=object) for t in texts]

    async def call(i: int) -> None:
        tensor = aio_grpc.InferInput("text", [1, 1], "BYTES")
        tensor.set_data_from_numpy(encoded[i % len(encoded)])
        await client.infer(model, [tensor])

    try:
        await call(0)  # warm-up
        result = await run_closed_loop(call, total, concurrency)
    finally:
        await client.close()
    return result.summary(machine_facts()["cores_usable"])


async def http_triage_run(
    served: servers.Served, texts: list[str], concurrency: int, total: int
) -> dict:
    """POST /v1/triage with one text per request; the server's CPU is measured beside."""
    import aiohttp

    bodies = [json.dumps({"texts": [t]}).encode() for t in texts]
    headers = {"Content-Type": "application/json"}
    if served.api_key:
        headers["X-API-Key"] = served.api_key
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(served.base_url, connector=connector, headers=headers) as http:

        async def call(i: int) -> None:
            async with http.post("/v1/triage", data=bodies[i % len(bodies)]) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")

        await asyncio.gather(*(call(i) for i in range(concurrency)))  # warm-up, connections open
        cpu_before = served.cpu_seconds()
        result = await run_closed_loop(call, total, concurrency)
        server_cpu = served.cpu_seconds() - cpu_before
    cores = machine_facts()["cores_usable"]
    return result.summary(cores) | {
        "server_cpu_share": round(server_cpu / (result.seconds * cores), 3),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / total, 3),
    }


def run(
    *,
    url: str,
    repository: Path,
    concurrencies: list[int],
    requests: int,
    queue_delays: list[int] | None,
    mixed_requests: int = 300,
    texts_limit: int,
    repeat: int = 1,
    triton_env: dict[str, str] | None = None,
    http_variants: bool = True,
) -> dict:
    """Every variant at every concurrency, `repeat` rounds, medians in the report.

    `triton_env` are the TRITON_* variables the orchestrator needs to reach the same Triton
    (from `url` and the TRITON_* settings when it is None).
    """
    texts = load_banking77(ExportSettings().banking77_dir).test.texts[:texts_limit]
    repository_delay = repository_queue_delay(repository)
    delays = queue_delays if queue_delays else [repository_delay]
    variants = {"batching_off": None} | {f"queue_delay_{d}us": d for d in delays}
    variants[STEPS_ENSEMBLE] = repository_delay
    triton_env = triton_env or orchestrator_triton_env(url, repository, TritonSettings())
    ceilings, measured = [], defaultdict(list)
    for round_number in range(1, repeat + 1):
        ceilings.append(ceiling(repository, texts))
        _ensemble_round(url, repository, texts, variants, concurrencies, requests, measured)
        _mixed_round(url, texts, mixed_requests, measured)
        if http_variants:
            _http_round(triton_env, repository, texts, concurrencies, requests, measured)
        _print_round(round_number, repeat, ceilings[-1], measured, concurrencies)
    report = {
        "command": command_line(),
        "machine": machine_facts(),
        "texts": len(texts),
        "requests_per_measurement": requests,
        "repeat": repeat,
        "statistic": f"median of {repeat} rounds",
        "repository_queue_delay_us": repository_delay,
        "ceiling_in_process": median_ceiling(ceilings),
        "triton_ensemble": {
            name: {str(c): median_of_runs(measured[(name, c)]) for c in concurrencies}
            for name in variants
        },
        "one_text_under_batches": {
            name: median_of_runs(measured[("one_text_under_batches", name)], each="p95_ms")
            for name in BACKGROUND_LOADS
        },
    }
    if http_variants:
        for name in ("orchestrator", UNCOALESCED, "plain_fastapi"):
            report[name] = {str(c): median_of_runs(measured[(name, c)]) for c in concurrencies}
        report["http_servers"] = http_server_notes()
    report["ratios"] = _ratios(report, f"queue_delay_{repository_delay}us")
    return report


def orchestrator_triton_env(
    grpc_url: str, repository: Path, settings: TritonSettings
) -> dict[str, str]:
    """TRITON_* for the orchestrator the bench starts: the same Triton the bench calls."""
    host, _, grpc_port = grpc_url.rpartition(":")
    return {
        "TRITON_HOST": host,
        "TRITON_GRPC_PORT": grpc_port,
        "TRITON_HTTP_PORT": str(settings.http_port),
        "TRITON_METRICS_PORT": str(settings.metrics_port),
        "TRITON_MODEL_REPOSITORY": str(repository),
    }


def _ensemble_round(url, repository, texts, variants, concurrencies, requests, measured) -> None:
    """Triton direct, each batching variant in turn; the repository's configs come back after."""
    client = grpcclient.InferenceServerClient(url)
    try:
        for name, delay in variants.items():
            if name == STEPS_ENSEMBLE:
                _steps_round(client, url, texts, concurrencies, requests, measured)
                continue
            reload_steps(client, repository, delay)
            for c in concurrencies:
                measured[(name, c)].append(asyncio.run(ensemble_run(url, texts, c, requests)))
    finally:
        for model in BATCHED_STEPS:
            client.load_model(model)  # back to the repository's own configs
        client.close()


def _steps_round(client, url, texts, concurrencies, requests, measured) -> None:
    """The chained ensemble with the repository's configs; unloaded after, as it was."""
    was_ready = {m: client.is_model_ready(m) for m in (*STEP_MODELS, STEPS_ENSEMBLE)}
    for model in (*STEP_MODELS, STEPS_ENSEMBLE):
        client.load_model(model)
    try:
        for c in concurrencies:
            measured[(STEPS_ENSEMBLE, c)].append(
                asyncio.run(ensemble_run(url, texts, c, requests, model=STEPS_ENSEMBLE))
            )
    finally:
        if not was_ready[STEPS_ENSEMBLE]:
            client.unload_model(STEPS_ENSEMBLE)


async def one_text_under_batches(
    url: str,
    texts: list[str],
    priority: int,
    *,
    requests: int = 300,
    batch: int = TRIAGE_MAX_BATCH,
    callers: int = 2,
) -> dict:
    """One-text calls (4 in flight) at `priority` while `callers` keep sending `batch`-text
    calls at the background level, as the worker does; the one-text calls' latency."""
    client = aio_grpc.InferenceServerClient(url)

    def tensor(chosen: list[str]):
        text = aio_grpc.InferInput("text", [len(chosen), 1], "BYTES")
        text.set_data_from_numpy(np.array([[t.encode()] for t in chosen], dtype=object))
        return text

    done = asyncio.Event()
    batches = 0

    async def background() -> None:
        nonlocal batches
        while not done.is_set():
            start = (batches * batch) % max(1, len(texts) - batch)
            chunk = texts[start : start + batch]
            await client.infer("ticket_triage", [tensor(chunk)], priority=BACKGROUND)
            batches += 1

    async def one(i: int) -> None:
        await client.infer("ticket_triage", [tensor([texts[i % len(texts)]])], priority=priority)

    try:
        loaders = [asyncio.create_task(background()) for _ in range(callers)]
        await asyncio.sleep(0.5)  # the batches are flowing before the first one-text call
        result = await run_closed_loop(one, requests, 4)
        done.set()
        await asyncio.gather(*loaders)
    finally:
        await client.close()
    return {
        "priority": priority,
        "one_text_requests": requests,
        "errors": result.errors,
        "background_batches": batches,
        "background_batch_texts": batch,
        "background_callers": callers,
        **latency_summary(result.latencies or [0.0]),
    }


# (texts per background call, callers): the worker's default, and the most it may send
BACKGROUND_LOADS = {
    "worker_default": (OrchestratorSettings.model_fields["worker_batch"].default, 1),
    "largest_batches": (TRIAGE_MAX_BATCH, 2),
}


def _mixed_round(url, texts, requests, measured) -> None:
    for name, (batch, callers) in BACKGROUND_LOADS.items():
        measured[("one_text_under_batches", name)].append(
            asyncio.run(
                one_text_under_batches(
                    url, texts, INTERACTIVE, requests=requests, batch=batch, callers=callers
                )
            )
        )


def _http_round(triton_env, repository, texts, concurrencies, requests, measured) -> None:
    """The orchestrator, then the plain app: each started for its turn, so neither idles beside
    the other's measurement."""
    starters = {
        "orchestrator": lambda: servers.orchestrator(triton_env),
        UNCOALESCED: lambda: servers.orchestrator(triton_env, **{COALESCING_SETTING: "0"}),
        "plain_fastapi": lambda: servers.plain_fastapi(repository),
    }
    for name, start in starters.items():
        with start() as served:
            for c in concurrencies:
                measured[(name, c)].append(asyncio.run(http_triage_run(served, texts, c, requests)))


def _print_round(round_number, repeat, ceiling_result, measured, concurrencies) -> None:
    names = dict.fromkeys(name for name, _ in measured)  # in the order measured
    ceiling_tps = ceiling_result["throughput_per_s"]
    print(f"round {round_number}/{repeat}: ceiling {ceiling_tps}/s", flush=True)
    for name in names:
        if name == "one_text_under_batches":
            continue
        figures = ", ".join(
            f"c={c} {measured[(name, c)][-1]['throughput_per_s']}/s" for c in concurrencies
        )
        print(f"  {name}: {figures}", flush=True)
    for (name, variant), runs in measured.items():
        if name == "one_text_under_batches":
            last = runs[-1]
            print(
                f"  one text under batches, {variant}: p50 {last['p50_ms']} ms, "
                f"p95 {last['p95_ms']} ms",
                flush=True,
            )


def http_server_notes() -> dict:
    return {
        "uvicorn_workers": servers.UVICORN_WORKERS,
        "fairness": "the orchestrator and the plain FastAPI app each run under one uvicorn "
        "worker with the same flags (--log-level warning --no-access-log), started by the "
        "bench on loopback; the client sends one text per request with the same texts",
        "orchestrator": "orchestrator.app:create_app with its default settings (job worker in "
        "process) but the rate limit lifted; SQLite in a temporary folder; the key of a new "
        "tenant made through /v1/admin; Triton with the repository's own configs",
        "plain_fastapi": "loadtest.bench.plain_fastapi:create_app; the same tokenizer and ONNX "
        "files (latest encoder version, as Triton serves) run per request in FastAPI's thread "
        "pool; no API key, no database",
        "client": "aiohttp, closed loop, one connection per concurrent worker",
    }


def _ratios(report: dict, batching_on: str) -> dict:
    ceiling_tps = report["ceiling_in_process"]["throughput_per_s"]
    ensemble = report["triton_ensemble"]
    ratios = {}
    off = ensemble.get("batching_off", {})
    for name, by_concurrency in ensemble.items():
        for c, r in by_concurrency.items():
            ratios[f"{name}_c{c}_vs_ceiling"] = round(r["throughput_per_s"] / ceiling_tps, 3)
            if name not in ("batching_off", STEPS_ENSEMBLE) and c in off:
                ratios[f"{name}_c{c}_vs_batching_off"] = round(
                    r["throughput_per_s"] / off[c]["throughput_per_s"], 3
                )
    steps, fused = ensemble.get(STEPS_ENSEMBLE, {}), ensemble.get(batching_on, {})
    for c in fused.keys() & steps.keys():
        ratios[f"fused_c{c}_vs_steps"] = round(
            fused[c]["throughput_per_s"] / steps[c]["throughput_per_s"], 3
        )
    if "orchestrator" in report:
        ratios |= _http_ratios(report, ceiling_tps, ensemble.get(batching_on, {}))
    return ratios


def _http_ratios(report: dict, ceiling_tps: float, triton_direct: dict) -> dict:
    ratios = {}
    for c, r in report["orchestrator"].items():
        tps = r["throughput_per_s"]
        plain_tps = report["plain_fastapi"][c]["throughput_per_s"]
        ratios[f"orchestrator_c{c}_vs_ceiling"] = round(tps / ceiling_tps, 3)
        ratios[f"plain_fastapi_c{c}_vs_ceiling"] = round(plain_tps / ceiling_tps, 3)
        ratios[f"orchestrator_c{c}_vs_plain_fastapi"] = round(tps / plain_tps, 3)
        uncoalesced = report[UNCOALESCED][c]["throughput_per_s"]
        ratios[f"orchestrator_c{c}_vs_uncoalesced"] = round(tps / uncoalesced, 3)
        if c in triton_direct:
            ratios[f"orchestrator_c{c}_vs_triton_ensemble"] = round(
                tps / triton_direct[c]["throughput_per_s"], 3
            )
    return ratios
