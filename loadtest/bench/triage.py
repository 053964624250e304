"""`python -m loadtest.bench triage`: the triage path side by side, in one run.

- ceiling: the exported INT8 encoder and head in process with ONNX Runtime at their best batch;
- Triton's `ticket_triage` ensemble called directly over gRPC at each concurrency, with the
  repository's dynamic batching, then with it switched off (configs reloaded without
  `dynamic_batching`), and for each `--queue-delays` value given.
"""

import asyncio
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpc

from export.data import load_banking77
from export.model import batch_encode, load_tokenizer
from export.onnx_export import ort_session
from export.settings import ExportSettings
from loadtest.bench.client import run_closed_loop
from loadtest.machine import command_line, machine_facts
from orchestrator.triton.model_config import load_json, read_config

BATCHED_STEPS = ("ticket_tokenizer", "ticket_encoder", "ticket_classifier")


def ceiling(repository: Path, texts: list[str], batch_sizes=(1, 8, 32)) -> dict:
    """In-process ONNX Runtime, texts grouped by length; the best batch size wins."""
    tokenizer = load_tokenizer(128)
    encoder = ort_session(repository / "ticket_encoder" / "2" / "model.onnx")
    classifier = ort_session(repository / "ticket_classifier" / "1" / "model.onnx")
    ordered = sorted(texts, key=len)
    by_batch = {}
    for size in batch_sizes:
        started = time.perf_counter()
        for start in range(0, len(ordered), size):
            ids, mask = batch_encode(tokenizer, ordered[start : start + size])
            feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
            classifier.run(["intent"], {"embedding": encoder.run(None, feeds)[0]})
        by_batch[size] = round(len(texts) / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return {
        "texts_per_s_by_batch": by_batch,
        "best_batch": best,
        "throughput_per_s": by_batch[best],
    }


def _config(repository: Path, model: str, queue_delay_us: int | None) -> str:
    """The model's committed config; no dynamic batching when `queue_delay_us` is None."""
    config = read_config(repository / model)
    if queue_delay_us is None:
        config.ClearField("dynamic_batching")
    else:
        config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    return load_json(config)


def reload_steps(client, repository: Path, queue_delay_us: int | None) -> None:
    for model in BATCHED_STEPS:
        client.load_model(model, config=_config(repository, model, queue_delay_us))


async def ensemble_run(url: str, texts: list[str], concurrency: int, total: int) -> dict:
    client = aio_grpc.InferenceServerClient(url)
    encoded = [np.array([[t.encode()]], dtype=object) for t in texts]

    async def call(i: int) -> None:
        tensor = aio_grpc.InferInput("text", [1, 1], "BYTES")
        tensor.set_data_from_numpy(encoded[i % len(encoded)])
        await client.infer("ticket_triage", [tensor])

    try:
        await call(0)  # warm-up
        result = await run_closed_loop(call, total, concurrency)
    finally:
        await client.close()
    return result.summary(machine_facts()["cores_usable"])


def run(
    *,
    url: str,
    repository: Path,
    concurrencies: list[int],
    requests: int,
    queue_delays: list[int],
    texts_limit: int,
) -> dict:
    texts = load_banking77(ExportSettings().banking77_dir).test.texts[:texts_limit]
    client = grpcclient.InferenceServerClient(url)
    report = {"command": command_line(), "machine": machine_facts(), "texts": len(texts)}
    report["ceiling_in_process"] = ceiling(repository, texts)
    variants = {"batching_off": None} | {f"queue_delay_{d}us": d for d in queue_delays}
    results = {}
    try:
        for name, delay in variants.items():
            reload_steps(client, repository, delay)
            results[name] = {
                str(c): asyncio.run(ensemble_run(url, texts, c, requests)) for c in concurrencies
            }
            print(
                f"{name}: "
                + ", ".join(f"c={c} {r['throughput_per_s']}/s" for c, r in results[name].items()),
                flush=True,
            )
    finally:
        for model in BATCHED_STEPS:
            client.load_model(model)  # back to the repository's own configs
    report["triton_ensemble"] = results
    report["ratios"] = _ratios(report)
    return report


def _ratios(report: dict) -> dict:
    ceiling_tps = report["ceiling_in_process"]["throughput_per_s"]
    ensemble = report["triton_ensemble"]
    ratios = {}
    off = ensemble.get("batching_off", {})
    for name, by_concurrency in ensemble.items():
        for c, r in by_concurrency.items():
            ratios[f"{name}_c{c}_vs_ceiling"] = round(r["throughput_per_s"] / ceiling_tps, 3)
            if name != "batching_off" and c in off:
                ratios[f"{name}_c{c}_vs_batching_off"] = round(
                    r["throughput_per_s"] / off[c]["throughput_per_s"], 3
                )
    return ratios
