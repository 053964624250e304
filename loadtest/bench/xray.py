"""`python -m loadtest.bench xray`: the x-ray path measured, in one run.

- accuracy through the served path: every PneumoniaMNIST test image sent as a PNG to
  `POST /v1/diagnoses` of an orchestrator the bench starts itself (uvicorn, SQLite in a
  temporary folder, a key made through /v1/admin) in front of the running Triton; accuracy,
  AUC, sensitivity, specificity, ECE and the confusion matrix (a picture beside the JSON);
- ceiling: in process, the same PNGs decoded and prepared by the same code
  (contracts/images.py) and the installed ONNX file run by ONNX Runtime with every core, in
  batches of 32;
- Triton: the `xray_diagnosis` ensemble called directly over gRPC, one image per request, with
  dynamic batching of its two steps off (configs reloaded without `dynamic_batching`), then
  on with each `--queue-delays` value (default: the repository's own); the repository's
  configs are loaded back after each round;
- orchestrator: `POST /v1/diagnoses` (raw PNG bodies), one image per request.
Every measurement is repeated `--repeat` times, round by round, and medians are reported.
"""

import asyncio
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio_grpc

from contracts.images import model_input, png_bytes
from contracts.runtime import ort_session, usable_cores
from contracts.xray import LABELS, XRAY_CLASSIFIER, XRAY_ENSEMBLE, XRAY_FILE, XRAY_PREPROCESS
from export.settings import ExportSettings
from export.xray.data import load_pneumoniamnist
from export.xray.metrics import report as diagnosis_report
from loadtest.bench import servers
from loadtest.bench.client import median_of_runs, run_closed_loop
from loadtest.bench.triage import reload_steps, repository_queue_delay
from loadtest.machine import command_line, machine_facts

SCOPES = ("diagnoses:write", "diagnoses:read")
BATCHED_STEPS = (XRAY_PREPROCESS, XRAY_CLASSIFIER)
CEILING_BATCH = 32
# The latency aim at 8 concurrent clients (issue 18): p95 under 150 ms per image
P95_AIM_MS = 150.0


def run(*, url: str, repository: Path, concurrencies: list[int], requests: int, repeat: int,
        triton_env: dict[str, str], queue_delays: list[int] | None = None,
        chart: Path | None = None) -> dict:  # fmt: skip
    """The accuracy pass, then `repeat` rounds of the speed measurements."""
    test = load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)["test"]
    pngs = [png_bytes(pixels) for pixels in test.images]
    measured: dict = defaultdict(list)
    ceilings = []
    repository_delay = repository_queue_delay(repository, XRAY_CLASSIFIER)
    delays = queue_delays or [repository_delay]
    variants = {"batching_off": None} | {f"queue_delay_{d}us": d for d in delays}
    with servers.orchestrator(triton_env, scopes=SCOPES) as orchestrator:
        accuracy = asyncio.run(
            _served_accuracy(orchestrator, pngs, test.labels, chart and chart.parent)
        )
        for round_number in range(1, repeat + 1):
            ceilings.append(ceiling(repository / XRAY_FILE, pngs))
            _triton_round(url, repository, pngs, variants, concurrencies, requests, measured)
            for c in concurrencies:
                measured[("orchestrator", c)].append(
                    asyncio.run(_orchestrator_run(orchestrator, pngs, c, requests))
                )
            print(f"round {round_number}/{repeat}: ceiling {ceilings[-1]:.0f} images/s, "
                  + ", ".join(f"{name} c={c} {runs[-1]['throughput_per_s']}/s "
                              f"p95 {runs[-1]['p95_ms']} ms"
                              for (name, c), runs in measured.items()), flush=True)  # fmt: skip
    result = {
        "benchmark": "xray",
        "command": command_line(),
        "machine": machine_facts(),
        "images": len(pngs),
        "requests_per_measurement": requests,
        "repeat": repeat,
        "statistic": f"median of {repeat} rounds",
        "served_accuracy": accuracy,
        "ceiling_in_process_images_per_s": round(float(np.median(ceilings)), 1),
        "ceiling_each_run": [round(c, 1) for c in ceilings],
        "repository_queue_delay_us": repository_delay,
        "triton_ensemble": {
            name: {str(c): median_of_runs(measured[(name, c)]) for c in concurrencies}
            for name in variants
        },
        "orchestrator": {
            str(c): median_of_runs(measured[("orchestrator", c)]) for c in concurrencies
        },
    }
    result["ratios"] = _ratios(result, f"queue_delay_{repository_delay}us")
    if chart is not None:
        result["confusion_chart"] = str(confusion_chart(accuracy, chart))
    return result


async def _served_accuracy(
    orchestrator, pngs: list[bytes], labels: np.ndarray, heatmaps: Path | None
) -> dict:
    """Every test image through POST /v1/diagnoses, 8 at a time; the issue's figures. With
    `heatmaps`, the heatmaps of the first test image of each class answered right are saved
    there, as GET /v1/diagnoses/{id}/heatmap draws them."""
    probabilities, ids = np.zeros(len(pngs)), np.zeros(len(pngs), dtype=np.int64)
    thresholds = set()
    async with _client(orchestrator) as client:

        async def send(i: int) -> None:
            answer = await _post(client, pngs[i])
            probabilities[i], ids[i] = answer["probability"], answer["id"]
            thresholds.add(answer["threshold"])

        result = await run_closed_loop(send, len(pngs), 8)
        if result.errors:
            raise RuntimeError(f"{result.errors} of {len(pngs)} diagnoses failed")
        (threshold,) = thresholds  # one model answered every image
        report = diagnosis_report(probabilities, labels, threshold)
        if heatmaps is not None:
            right = (probabilities >= threshold).astype(np.int64) == labels
            report["heatmaps"] = {}
            for index, label in enumerate(LABELS):
                first = int(np.flatnonzero(right & (labels == index))[0])
                picture = await client.get(f"/v1/diagnoses/{ids[first]}/heatmap")
                picture.raise_for_status()
                path = heatmaps / f"xray-heatmap-{label}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(picture.content)
                report["heatmaps"][label] = {"test_image": first, "file": str(path)}
    return report


def ceiling(onnx_file: Path, pngs: list[bytes]) -> float:
    """Images per second in process: decode and prepare each PNG, run batches of 32."""
    session = ort_session(onnx_file, usable_cores())
    started = time.perf_counter()
    for start in range(0, len(pngs), CEILING_BATCH):
        batch = np.stack([model_input(png) for png in pngs[start : start + CEILING_BATCH]])
        session.run(None, {"image": batch})
    return len(pngs) / (time.perf_counter() - started)


def _triton_round(url, repository, pngs, variants, concurrencies, requests, measured) -> None:
    """Triton direct, each batching variant in turn; the repository's configs come back after."""
    client = grpcclient.InferenceServerClient(url)
    try:
        for name, delay in variants.items():
            reload_steps(client, repository, delay, BATCHED_STEPS)
            for c in concurrencies:
                measured[(name, c)].append(asyncio.run(_triton_run(url, pngs, c, requests)))
    finally:
        reload_steps(client, repository, repository_queue_delay(repository, XRAY_CLASSIFIER),
                     BATCHED_STEPS)  # fmt: skip
        client.close()


async def _triton_run(url: str, pngs: list[bytes], concurrency: int, requests: int) -> dict:
    client = aio_grpc.InferenceServerClient(url)
    try:

        async def call(i: int) -> None:
            tensor = aio_grpc.InferInput("image", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[pngs[i % len(pngs)]]], dtype=object))
            await client.infer(XRAY_ENSEMBLE, [tensor])

        result = await run_closed_loop(call, requests, concurrency)
    finally:
        await client.close()
    return result.summary(usable_cores())


async def _orchestrator_run(orchestrator, pngs, concurrency: int, requests: int) -> dict:
    async with _client(orchestrator) as client:
        result = await run_closed_loop(
            lambda i: _post(client, pngs[i % len(pngs)]), requests, concurrency
        )
    return result.summary(usable_cores())


def _client(orchestrator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=orchestrator.base_url,
        headers={"X-API-Key": orchestrator.api_key, "Content-Type": "image/png"},
        timeout=60,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


async def _post(client: httpx.AsyncClient, png: bytes) -> dict:
    response = await client.post("/v1/diagnoses", content=png)
    response.raise_for_status()
    return response.json()


def _ratios(result: dict, served_variant: str) -> dict:
    ceiling_rate = result["ceiling_in_process_images_per_s"]
    ratios = {}
    for c, figures in result["orchestrator"].items():
        triton = result["triton_ensemble"][served_variant][c]["throughput_per_s"]
        ratios[f"orchestrator_to_ceiling_c{c}"] = round(
            figures["throughput_per_s"] / ceiling_rate, 3
        )
        ratios[f"triton_to_ceiling_c{c}"] = round(triton / ceiling_rate, 3)
        ratios[f"orchestrator_to_triton_c{c}"] = round(figures["throughput_per_s"] / triton, 3)
    p95 = result["orchestrator"].get("8", {}).get("p95_ms")
    if p95 is not None:
        ratios["orchestrator_p95_ms_c8_within_aim"] = p95 < P95_AIM_MS
    return ratios


def confusion_chart(accuracy: dict, path: Path) -> Path:
    """The confusion matrix of the served path as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = accuracy["confusion"]
    matrix = np.array(
        [
            [counts["true_negative"], counts["false_positive"]],
            [counts["false_negative"], counts["true_positive"]],
        ]
    )
    figure, axes = plt.subplots(figsize=(4.2, 3.8))
    axes.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        axes.text(col, row, str(value), ha="center", va="center", color=colour, fontsize=14)
    axes.set_xticks([0, 1], LABELS)
    axes.set_yticks([0, 1], LABELS)
    axes.set_xlabel("served answer")
    axes.set_ylabel("PneumoniaMNIST label")
    axes.set_title(
        f"test split via POST /v1/diagnoses\naccuracy {accuracy['accuracy']:.3f}, "
        f"AUC {accuracy['auc']:.3f}",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
