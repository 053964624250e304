"""`python -m loadtest.bench llm`: the LLM path side by side, same prompts and max_tokens.

For each number of concurrent streams (1, 4, 16 by default):
- ceiling: llama.cpp in process (same GGUF and threads), the N prompts as N sequences of one
  batch, through the same scheduler the `llm` model uses;
- triton: the `llm` model through the gRPC stream client, N streams at once;
- llama_cpp_server: llama-cpp-python's bundled OpenAI server, `--interrupt_requests False`
  so that requests queue, N SSE streams at once;
- transformers: `generate` one request at a time (N clients waiting their turn).
Each reports aggregate tokens/s, TTFT and inter-token latency p50/p95; ratios to the ceiling
and to each peer follow.
"""

import asyncio
import json
import subprocess  # nosec B404  # starts the bench's own servers, fixed argv
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from contracts.models import LLM_MODEL
from llm_engine.packaged import packaged_gguf
from loadtest.bench.client import median_of_runs
from loadtest.machine import command_line, machine_facts
from loadtest.sse import DONE, delta_text, sse_data
from loadtest.texts import FALLBACK_TEXTS

TICKETS = list(FALLBACK_TEXTS[:8])  # fixed prompts, so every run decodes the same work


def prompts(n: int) -> list[list[dict]]:
    system = "You are a helpful customer-support agent at a bank. Reply briefly."
    return [
        [
            {"role": "system", "content": system},
            {"role": "user", "content": TICKETS[i % len(TICKETS)]},
        ]
        for i in range(n)
    ]


@dataclass
class Stream:
    """What one client saw: when it sent, when each piece of text arrived, how many tokens."""

    sent: float
    arrivals: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None


def summarise(streams: list[Stream], wall: float) -> dict:
    ok = [s for s in streams if s.error is None and s.arrivals]
    ttft = [s.arrivals[0] - s.sent for s in ok]
    gaps = [b - a for s in ok for a, b in zip(s.arrivals, s.arrivals[1:], strict=False)]
    tokens = sum(s.tokens for s in ok)

    def pct(values, q):
        return round(float(np.percentile(values, q)) * 1000, 1) if values else None

    return {
        "streams": len(streams),
        "errors": len(streams) - len(ok),
        "tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "ttft_p50_ms": pct(ttft, 50),
        "ttft_p95_ms": pct(ttft, 95),
        "itl_p50_ms": pct(gaps, 50),
        "itl_p95_ms": pct(gaps, 95),
        "wall_s": round(wall, 2),
    }


# ---- ceiling: the scheduler and llama.cpp in this process -----------------------------------
def ceiling(n: int, max_tokens: int, threads: int) -> dict:
    from llm_engine.llama_cpp_engine import LlamaCppEngine
    from llm_engine.sampling import SamplingParams
    from llm_engine.scheduler import Request, Scheduler

    engine = LlamaCppEngine(
        max_slots=max(n, 1), context_size=4096, step_tokens=512, threads=threads
    )
    scheduler = Scheduler(engine, max_active=n, step_token_budget=512, prefill_chunk=512).start()
    try:
        texts = [engine.render_chat(m) for m in prompts(n)]
        _warm_up(scheduler, texts[0])
        streams, finished, all_done = [], [], threading.Event()
        started = time.perf_counter()
        for text in texts:
            stream = Stream(sent=started)
            streams.append(stream)

            def on_text(_delta, s=stream):
                s.arrivals.append(time.perf_counter())

            def on_finish(finish, s=stream):
                s.tokens = finish.generated_tokens
                s.error = finish.error
                finished.append(s)
                if len(finished) == n:
                    all_done.set()

            scheduler.submit(
                Request(text, SamplingParams(max_tokens=max_tokens), on_text, on_finish)
            )
        all_done.wait()
        return summarise(streams, time.perf_counter() - started)
    finally:
        scheduler.stop()
        engine.close()


def _warm_up(scheduler, text: str) -> None:
    from llm_engine.sampling import SamplingParams
    from llm_engine.scheduler import Request

    done = threading.Event()
    warm = Request(text, SamplingParams(max_tokens=4), lambda _: None, lambda _: done.set())
    scheduler.submit(warm)
    done.wait(60)


# ---- Triton's llm over gRPC streams ---------------------------------------------------------
async def triton(url: str, n: int, max_tokens: int) -> dict:
    import tritonclient.grpc.aio as aio

    from orchestrator.triton.llm_client import request_inputs

    client = aio.InferenceServerClient(url)

    async def one(i, messages, stream: Stream):
        async def requests():
            yield {
                "model_name": LLM_MODEL,
                "inputs": request_inputs(messages, max_tokens=max_tokens),
                "request_id": str(i),
            }

        async for result, error in client.stream_infer(requests()):
            if error is not None:
                stream.error = str(error)
                return
            response = result.get_response()
            text = result.as_numpy("text_output")
            if text is not None and text.reshape(-1)[0]:
                stream.arrivals.append(time.perf_counter())
            if response.parameters["triton_final_response"].bool_param:
                stream.tokens = int(result.as_numpy("num_output_tokens").reshape(-1)[0])
                return

    try:
        await one(-1, prompts(1)[0], Stream(sent=time.perf_counter()))  # warm-up
        started = time.perf_counter()
        streams = [Stream(sent=started) for _ in range(n)]
        await asyncio.gather(
            *(one(i, m, s) for i, (m, s) in enumerate(zip(prompts(n), streams, strict=True)))
        )
        return summarise(streams, time.perf_counter() - started)
    finally:
        await client.close()


# ---- llama-cpp-python's own OpenAI server ---------------------------------------------------
async def openai_sse(base_url: str, n: int, max_tokens: int) -> dict:
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:

        async def one(messages, stream: Stream):
            body = {
                "model": "m",
                "messages": messages,
                "max_tokens": max_tokens,
                "stream": True,
                "temperature": 0.0,
            }
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    stream.error = f"HTTP {response.status_code}"
                    return
                async for line in response.aiter_lines():
                    data = sse_data(line)
                    if data is None or data == DONE:
                        continue
                    if delta_text(json.loads(data)):
                        stream.arrivals.append(time.perf_counter())
                        stream.tokens += 1  # one content chunk per token in this server

        started = time.perf_counter()
        streams = [Stream(sent=started) for _ in range(n)]
        await asyncio.gather(*(one(m, s) for m, s in zip(prompts(n), streams, strict=True)))
        return summarise(streams, time.perf_counter() - started)


def start_llama_cpp_server(port: int, threads: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(packaged_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_ctx",
        "4096",
        "--interrupt_requests",
        "False",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # nosec B603  # fixed argv built here, no shell
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start (is llama-cpp-python[server] installed?)")


# ---- transformers generate, one request at a time -------------------------------------------
def transformers_sequential(folder: Path, n: int, max_tokens: int, threads: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))  # nosec B615  # a local model folder, not the Hub
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # nosec B615  # a local model folder, not the Hub

    class Timing(BaseStreamer):
        def __init__(self, stream):
            self.stream, self.first = stream, True

        def put(self, value):
            if self.first:  # the prompt itself is put first
                self.first = False
                return
            self.stream.arrivals.append(time.perf_counter())
            self.stream.tokens += 1

        def end(self):
            pass

    started = time.perf_counter()
    streams = [Stream(sent=started) for _ in range(n)]
    for messages, stream in zip(prompts(n), streams, strict=True):
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            model.generate(
                **inputs, max_new_tokens=max_tokens, do_sample=False, streamer=Timing(stream)
            )
    return summarise(streams, time.perf_counter() - started)


def run(
    *,
    url: str,
    concurrencies: list[int],
    max_tokens: int,
    threads: int,
    peers: bool,
    server_port: int,
    hf_folder: Path | None,
    repeat: int = 1,
) -> dict:
    report = {
        "command": command_line(),
        "machine": machine_facts(),
        "max_tokens": max_tokens,
        "threads": threads,
        "repeat": repeat,
        "results": {str(n): {} for n in concurrencies},
    }
    measure = {
        "ceiling": lambda n: ceiling(n, max_tokens, threads),
        "triton": lambda n: asyncio.run(triton(url, n, max_tokens)),
    }
    server = None
    if peers:
        server = start_llama_cpp_server(server_port, threads)
        base = f"http://127.0.0.1:{server_port}"
        measure["llama_cpp_server"] = lambda n: asyncio.run(openai_sse(base, n, max_tokens))
        if hf_folder is not None:
            measure["transformers"] = lambda n: transformers_sequential(
                hf_folder, n, max_tokens, threads
            )
    try:
        # Rounds interleave the variants, so that a slow spell of the machine hits them all.
        rounds: dict[tuple[int, str], list[dict]] = {}
        for round_number in range(1, repeat + 1):
            for n in concurrencies:
                for name, fn in measure.items():
                    rounds.setdefault((n, name), []).append(fn(n))
                print(
                    f"round {round_number}, n={n}: "
                    + ", ".join(
                        f"{name} {rounds[(n, name)][-1]['tokens_per_s']} tok/s" for name in measure
                    ),
                    flush=True,
                )
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    for (n, name), runs in rounds.items():
        report["results"][str(n)][name] = median_of_runs(runs, each="tokens_per_s")
    report["ratios"] = ratios(report["results"])
    return report


def ratios(results: dict) -> dict:
    out = {}
    for n, row in results.items():
        base = row["ceiling"]["tokens_per_s"]
        for name, r in row.items():
            if name != "ceiling" and base:
                out[f"n{n}_{name}_vs_ceiling"] = round(r["tokens_per_s"] / base, 3)
        for peer in ("llama_cpp_server", "transformers"):
            if peer in row and row[peer]["tokens_per_s"]:
                out[f"n{n}_triton_vs_{peer}"] = round(
                    row["triton"]["tokens_per_s"] / row[peer]["tokens_per_s"], 3
                )
    return out
