"""`python -m loadtest evaluate`: the Banking77 test split through the running Triton.

Every text is its own request, `--concurrency` in flight, as tickets would arrive. First
through the orchestrator's `POST /v1/triage` (an orchestrator started for the run on a
throwaway SQLite database, against the same Triton; `--no-api` skips it); then through
`ticket_triage`, what the orchestrator calls (its one step, the fused `ticket_intent`); then
through `ticket_triage_steps` (tokenizer, encoder, classifier chained) with
each encoder version (1 = fp32, 2 = INT8) loaded in turn through Triton's repository API with a
version-policy override. The chained ensemble is unloaded and the encoder's own policy restored
after.
"""

import asyncio
import json
from pathlib import Path

import tritonclient.grpc as grpcclient
from tqdm import tqdm

from contracts.models import ENCODER_VERSIONS, TRIAGE_ENSEMBLE
from export.data import Split, load_banking77
from export.metrics import accuracy, latency_summary, macro_f1
from export.settings import ExportSettings
from loadtest.bench import servers
from loadtest.bench.client import run_closed_loop
from loadtest.bench.triage import orchestrator_triton_env
from loadtest.machine import command_line, machine_facts
from orchestrator.settings import TritonSettings
from orchestrator.triton.triage_client import TriageClient

ENCODER = "ticket_encoder"
STEPS_ENSEMBLE = "ticket_triage_steps"
PRECISION_OF_VERSION = {v: k for k, v in ENCODER_VERSIONS.items()}


def evaluate_through_triton(
    settings: ExportSettings,
    *,
    url: str | None,
    versions: list[str],
    concurrency: int,
    limit: int | None,
    through_api: bool = True,
) -> dict:
    triton = TritonSettings()
    url = url or triton.grpc_url
    data = load_banking77(settings.banking77_dir)
    split = data.test if not limit else Split(data.test.texts[:limit], data.test.labels[:limit])
    expected = [data.intents[label] for label in split.labels]
    client = grpcclient.InferenceServerClient(url)

    def measure(model: str, label: str) -> dict:
        predicted, latencies, seconds = asyncio.run(
            _classify_all(url, model, split.texts, concurrency, label)
        )
        return {
            "model": model,
            "accuracy": round(accuracy(predicted, expected), 4),
            "macro_f1": round(macro_f1(predicted, expected), 4),
            "requests_per_s": round(len(split) / seconds, 1),
            "latency": latency_summary(latencies),
        }

    report = {"command": command_line(), "machine": machine_facts(), "triton_grpc": url}
    if through_api:
        env = orchestrator_triton_env(url, Path(triton.model_repository), triton)
        predicted, latencies, seconds = asyncio.run(
            _triage_all_through_api(env, split.texts, concurrency)
        )
        report["orchestrator"] = {
            "path": "POST /v1/triage",
            "accuracy": round(accuracy(predicted, expected), 4),
            "macro_f1": round(macro_f1(predicted, expected), 4),
            "requests_per_s": round(len(split) / seconds, 1),
            "latency": latency_summary(latencies),
        }
    served = measure(TRIAGE_ENSEMBLE, "ticket_triage") | {"encoder": "fused INT8"}
    results = {}
    client.load_model(STEPS_ENSEMBLE)
    try:
        for version in versions:
            use_encoder_version(client, version)
            results[version] = {
                "encoder_version": version,
                "precision": PRECISION_OF_VERSION.get(version, "unknown"),
            } | measure(STEPS_ENSEMBLE, f"steps, encoder v{version}")
    finally:
        client.unload_model(STEPS_ENSEMBLE)
        restore_encoder(client)
    report |= {
        "texts": len(split),
        "concurrency": concurrency,
        "served": served,
        "results": list(results.values()),
    }
    if {"1", "2"} <= results.keys():
        report["int8_accuracy_drop_points"] = round(
            100 * (results["1"]["accuracy"] - results["2"]["accuracy"]), 2
        )
        report["int8_speedup"] = round(
            results["2"]["requests_per_s"] / results["1"]["requests_per_s"], 2
        )
    return report


def use_encoder_version(client: grpcclient.InferenceServerClient, version: str) -> None:
    """Reload the encoder serving only `version`; the ensemble's version -1 follows it."""
    config = client.get_model_config(ENCODER, as_json=True)["config"]
    config["version_policy"] = {"specific": {"versions": [int(version)]}}
    client.load_model(ENCODER, config=json.dumps(config))
    if not client.is_model_ready(ENCODER, version):
        raise RuntimeError(f"{ENCODER} version {version} did not become ready")


def restore_encoder(client: grpcclient.InferenceServerClient) -> None:
    client.load_model(ENCODER)


async def _triage_all_through_api(triton_env: dict[str, str], texts: list[str], concurrency: int):
    """Each text as its own POST /v1/triage; (predictions, latencies, seconds)."""
    import aiohttp

    predicted: list[str] = [""] * len(texts)
    progress = tqdm(total=len(texts), desc="POST /v1/triage", unit="text")
    with servers.orchestrator(triton_env) as served:
        headers = {"Content-Type": "application/json", "X-API-Key": served.api_key or ""}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            served.base_url, connector=connector, headers=headers
        ) as http:

            async def triage(i: int) -> None:
                async with http.post("/v1/triage", json={"texts": [texts[i]]}) as response:
                    body = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}: {str(body)[:200]}")
                predicted[i] = body["results"][0]["intent"]
                progress.update()

            try:
                run = await run_closed_loop(triage, len(texts), concurrency)
            finally:
                progress.close()
    if run.errors:
        raise RuntimeError(f"{run.errors} of {len(texts)} requests to /v1/triage failed")
    return predicted, run.latencies, run.seconds


async def _classify_all(url: str, model: str, texts: list[str], concurrency: int, label: str):
    """Each text as its own request, `concurrency` in flight; (predictions, latencies, seconds)."""
    client = TriageClient(url, model=model)
    predicted: list[str] = [""] * len(texts)
    progress = tqdm(total=len(texts), desc=label, unit="text")

    async def classify(i: int) -> None:
        predicted[i] = (await client.classify([texts[i]]))[0].intent
        progress.update()

    try:
        run = await run_closed_loop(classify, len(texts), concurrency)
    finally:
        await client.close()
        progress.close()
    if run.errors:
        raise RuntimeError(f"{run.errors} of {len(texts)} requests to Triton failed")
    return predicted, run.latencies, run.seconds
