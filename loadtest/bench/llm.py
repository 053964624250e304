"""`python -m loadtest.bench llm`: the LLM path side by side, with equal work on every side.

Every side decodes the same distinct prompts (rendered with the GGUF's chat template, as the
`llm` model renders them) to exactly `max_tokens` greedy tokens each, end of sequence
ignored, at 1, 4 and 16 concurrent streams (by default); tokens are counted from what each
side reports it generated (usage), not from the pieces of text that arrived.

- ceiling: llama.cpp's own multi-sequence batch decode in this process (llama_ceiling.py):
  the same GGUF and threads, the N prompts as N sequences decoded together;
- llama_server: llama.cpp's `llama-server --parallel 16 --cont-batching`, built from the
  source llama-cpp-python vendors (llama_server.py), N streams on its `/completion` endpoint;
- triton: the `llm` model through Triton's gRPC stream, N streams at once;
- orchestrator: the orchestrator's `/v1/chat/completions` (the bench starts it on the same
  Triton) through the official `openai` client, N streams with `stream_options.include_usage`
  and the `ignore_eos` extension.

The sides run one after another, never at once, in interleaved rounds (`--repeat`), and each
figure is the median over the rounds. The report carries tokens/s, TTFT and inter-token
latency p50/p95 per side and per number of streams, ratios to the ceiling and to
llama-server, and the issue's aims, each marked met or not.
"""

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from contracts.models import LLM_MODEL
from loadtest.bench.client import median_of_runs
from loadtest.machine import command_line, machine_facts
from loadtest.sse import DONE, sse_data
from loadtest.texts import FALLBACK_TEXTS

SIDES = ("ceiling", "llama_server", "triton", "orchestrator")
SYSTEM = "You are a helpful customer-support agent at a bank. Reply briefly."
# Fixed texts, so that every run decodes the same work; 16 of them, so that 16 streams are
# 16 distinct prompts (beyond 16 each is numbered, and still distinct).
TICKETS = (
    *FALLBACK_TEXTS,
    "My salary has not shown up in my account yet.",
    "Is there a limit on how much cash I can withdraw abroad?",
    "I want to close my account. How do I do that?",
    "The app says my payment is pending. How long will it stay like that?",
)


def prompts(n: int, reference: str = "") -> list[list[dict]]:
    """N distinct chats: one system prompt, shared by all, and one ticket each.

    A `reference` (digits) opens every ticket: each measurement gets its own, so that no
    side's prompt cache holds a prompt from an earlier measurement (only the shared system
    prompt may be reused), while every side sees the same number of tokens (one per digit).
    """
    out = []
    for i in range(n):
        ticket = TICKETS[i % len(TICKETS)]
        if i >= len(TICKETS):
            ticket = f"{ticket} (ticket {i + 1})"
        if reference:
            ticket = f"(ref {reference}) {ticket}"
        out.append([{"role": "system", "content": SYSTEM}, {"role": "user", "content": ticket}])
    return out


@dataclass
class Stream:
    """What one client saw: when it sent, when each piece of text arrived, and the tokens
    the side reported for it."""

    sent: float
    arrivals: list[float] = field(default_factory=list)
    tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None


def _ms_percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def summarise(streams: list[Stream], wall: float) -> dict:
    ok = [s for s in streams if s.error is None and s.arrivals]
    ttft = [s.arrivals[0] - s.sent for s in ok]
    gaps = [b - a for s in ok for a, b in zip(s.arrivals, s.arrivals[1:], strict=False)]
    tokens = sum(s.tokens for s in ok)
    return {
        "streams": len(streams),
        "errors": len(streams) - len(ok),
        "tokens": tokens,
        "prompt_tokens": sum(s.prompt_tokens for s in ok),
        "tokens_per_s": round(tokens / wall, 1) if wall > 0 else 0.0,
        "ttft_p50_ms": _ms_percentile(ttft, 50),
        "ttft_p95_ms": _ms_percentile(ttft, 95),
        "itl_p50_ms": _ms_percentile(gaps, 50),
        "itl_p95_ms": _ms_percentile(gaps, 95),
        "wall_s": round(wall, 3),
        "first_error": next((s.error for s in streams if s.error), None),
    }


def warmed_up(side: str, result: dict) -> None:
    """A side whose first request fails is not measured: the run stops, saying why."""
    if result["errors"]:
        raise RuntimeError(f"{side}: the warm-up request failed: {result['first_error']}")


# ---- ceiling: llama.cpp's batch decode in this process ---------------------------------------
class Ceiling:
    """The ceiling side, and the renderer/tokenizer the other sides' prompts come from."""

    def __init__(self, threads: int, max_streams: int, context: int = 8192):
        from loadtest.bench.llama_ceiling import LlamaCeiling

        self.llama = LlamaCeiling(
            threads=threads, max_sequences=max(max_streams, 1), context_size=context
        )
        self.llama.run([self.tokens(1)[0]], 4)  # warm-up: pages the weights in

    def texts(self, n: int, reference: str = "") -> list[str]:
        return [self.llama.render(m) for m in prompts(n, reference)]

    def tokens(self, n: int, reference: str = "") -> list[list[int]]:
        return [self.llama.tokenize(t) for t in self.texts(n, reference)]

    def __call__(self, n: int, max_tokens: int, reference: str = "") -> dict:
        run = self.llama.run(self.tokens(n, reference), max_tokens)
        streams = [
            Stream(run.started, d.arrivals, len(d.tokens), d.prompt_tokens) for d in run.sequences
        ]
        return summarise(streams, max(d.arrivals[-1] for d in run.sequences) - run.started)

    def close(self) -> None:
        self.llama.close()


# ---- llama-server: /completion, streamed ------------------------------------------------------
def completion_body(prompt: str, max_tokens: int) -> dict:
    """llama-server's native request: exactly `max_tokens` greedy tokens, with its prompt
    cache on (its default, as a user would run it): it may reuse the shared system prompt, as
    the `llm` model's prefix cache does."""
    return {
        "prompt": prompt,
        "n_predict": max_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "cache_prompt": True,
    }


async def llama_server_streams(
    base_url: str, texts: list[str], max_tokens: int, transport: httpx.AsyncBaseTransport = None
) -> dict:
    """N streams on `/completion`; tokens from each final chunk's `tokens_predicted`."""
    limits = httpx.Limits(max_connections=len(texts) + 1)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=600, limits=limits, transport=transport
    ) as client:

        async def one(text: str, stream: Stream) -> None:
            body = completion_body(text, max_tokens)
            async with client.stream("POST", "/completion", json=body) as response:
                if response.status_code != 200:
                    stream.error = f"HTTP {response.status_code}"
                    return
                async for line in response.aiter_lines():
                    data = sse_data(line)
                    if data is None or data == DONE:
                        continue
                    chunk = json.loads(data)
                    if chunk.get("content"):
                        stream.arrivals.append(time.perf_counter())
                    if chunk.get("stop"):
                        stream.tokens = int(chunk.get("tokens_predicted", 0))
                        stream.prompt_tokens = int(chunk.get("tokens_evaluated", 0))

        started = time.perf_counter()
        streams = [Stream(sent=started) for _ in texts]
        await asyncio.gather(*(one(t, s) for t, s in zip(texts, streams, strict=True)))
        return summarise(streams, time.perf_counter() - started)


@contextmanager
def llama_server(binary: Path, *, threads: int, parallel: int, context: int) -> Iterator[str]:
    """llama-server on a free loopback port; yields its base URL once /health answers 200."""
    import subprocess  # nosec B404  # the cached binary, fixed argv

    from llm_engine.config import DEFAULTS
    from llm_engine.factory import serving_path
    from loadtest.bench.llama_server import server_command
    from loadtest.bench.servers import free_port, stop_process, wait_serving

    port = free_port()
    command = server_command(
        binary, serving_path(DEFAULTS), port, threads=threads, parallel=parallel, context=context
    )
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # nosec B603
        try:
            base_url = f"http://127.0.0.1:{port}"
            try:
                wait_serving(base_url, process, "/health", timeout_s=120)
            except RuntimeError as error:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"llama-server did not start: {error}\n{tail}") from None
            yield base_url
        finally:
            stop_process(process)


# ---- Triton's llm over gRPC streams ------------------------------------------------------------
async def triton_streams(url: str, chats: list[list[dict]], max_tokens: int) -> dict:
    import tritonclient.grpc.aio as aio

    from orchestrator.triton.llm_client import request_inputs

    client = aio.InferenceServerClient(url)

    async def one(i: int, messages: list[dict], stream: Stream) -> None:
        async def requests():
            inputs = request_inputs(messages, max_tokens=max_tokens, ignore_eos=True)
            yield {"model_name": LLM_MODEL, "inputs": inputs, "request_id": str(i)}

        async for result, error in client.stream_infer(requests()):
            if error is not None:
                stream.error = str(error)
                return
            text = result.as_numpy("text_output")
            if text is not None and text.reshape(-1)[0]:
                stream.arrivals.append(time.perf_counter())
            if result.get_response().parameters["triton_final_response"].bool_param:
                stream.tokens = int(result.as_numpy("num_output_tokens").reshape(-1)[0])
                stream.prompt_tokens = int(result.as_numpy("num_input_tokens").reshape(-1)[0])
                # no return: the call ends by itself now (see LLMClient.stream)

    try:
        started = time.perf_counter()
        streams = [Stream(sent=started) for _ in chats]
        await asyncio.gather(
            *(one(i, m, s) for i, (m, s) in enumerate(zip(chats, streams, strict=True)))
        )
        return summarise(streams, time.perf_counter() - started)
    finally:
        await client.close()


# ---- the orchestrator's /v1/chat/completions through the openai client -------------------------
async def orchestrator_streams(
    base_url: str, api_key: str, chats: list[list[dict]], max_tokens: int
) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=600)

    async def one(messages: list[dict], stream: Stream) -> None:
        try:
            chunks = await client.chat.completions.create(
                model=LLM_MODEL,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.0,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},  # the orchestrator's extension, as vLLM's
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    stream.arrivals.append(time.perf_counter())
                if chunk.usage is not None:
                    stream.tokens = chunk.usage.completion_tokens
                    stream.prompt_tokens = chunk.usage.prompt_tokens
        except Exception as error:  # an error is counted, not raised: the others go on
            stream.error = f"{type(error).__name__}: {error}"

    try:
        started = time.perf_counter()
        streams = [Stream(sent=started) for _ in chats]
        await asyncio.gather(*(one(m, s) for m, s in zip(chats, streams, strict=True)))
        return summarise(streams, time.perf_counter() - started)
    finally:
        await client.close()


# ---- one run, side by side ----------------------------------------------------------------------
Side = Callable[[int, str], dict]  # (n streams, prompts' reference) -> summarise()'s figures


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout carries the JSON


def side_by_side(
    sides: dict[str, Side], concurrencies: list[int], repeat: int, log=_progress
) -> dict[str, dict[str, dict]]:
    """results[str(n)][side]: the median of each figure over `repeat` rounds.

    Within a round each number of streams is measured on every side in turn, one side at a
    time, so that a slow spell of a shared machine falls on all of them alike.
    """
    rounds: dict[tuple[int, str], list[dict]] = {}
    measurements = 0
    for round_number in range(1, repeat + 1):
        for n in concurrencies:
            for name, measure in sides.items():
                measurements += 1
                reference = f"{measurements:04d}"  # fixed width: the same tokens on every side
                rounds.setdefault((n, name), []).append(measure(n, reference))
            log(
                f"round {round_number}, {n} streams: "
                + ", ".join(
                    f"{name} {rounds[(n, name)][-1]['tokens_per_s']} tok/s" for name in sides
                )
            )
    results: dict[str, dict[str, dict]] = {str(n): {} for n in concurrencies}
    for (n, name), runs in rounds.items():
        results[str(n)][name] = median_of_runs(runs, each="tokens_per_s")
    return results


def ratios(results: dict[str, dict[str, dict]]) -> dict[str, float]:
    """Each side's tokens/s over the ceiling's and over llama-server's, per number of streams."""
    out = {}
    for n, row in results.items():
        for base in ("ceiling", "llama_server"):
            base_rate = row.get(base, {}).get("tokens_per_s")
            if not base_rate:
                continue
            for name, figures in row.items():
                if name not in (base, "ceiling"):
                    out[f"n{n}_{name}_vs_{base}"] = round(figures["tokens_per_s"] / base_rate, 3)
    return out


# The aims: (side, streams, figure, over which side's figure or None, op, target).
AIMS = (
    ("triton", 16, "tokens_per_s", "ceiling", ">=", 0.9),
    ("triton", 16, "tokens_per_s", "llama_server", ">", 1.0),
    ("triton", 1, "tokens_per_s", "llama_server", ">=", 1.0),
    ("orchestrator", 16, "tokens_per_s", "ceiling", ">=", 0.8),
    ("triton", 16, "ttft_p95_ms", None, "<", 1000),
    ("orchestrator", 16, "ttft_p95_ms", None, "<", 1000),
)
_COMPARE = {">=": float.__ge__, ">": float.__gt__, "<": float.__lt__}


def aims(results: dict[str, dict[str, dict]]) -> list[dict]:
    """Each aim with its figure and whether it is met (None when a side or a number of
    streams it needs was not measured)."""
    out = []
    for side, n, key, base, op, target in AIMS:
        row = results.get(str(n), {})
        value = row.get(side, {}).get(key)
        if base is not None:
            below = row.get(base, {}).get(key)
            value = round(value / below, 3) if value is not None and below else None
        over = f" / {base}'s" if base else ""
        out.append(
            {
                "aim": f"{side} at {n} streams: {key}{over} {op} {target}",
                "figure": value,
                "met": None if value is None else _COMPARE[op](float(value), float(target)),
            }
        )
    return out


def prompt_tokens_match(results: dict[str, dict[str, dict]]) -> bool:
    """Equal work: at each number of streams every side saw the same number of prompt tokens."""
    return all(len({r["prompt_tokens"] for r in row.values()}) <= 1 for row in results.values())


def run(
    *,
    url: str,
    orchestrator_env: dict[str, str] | None,
    concurrencies: list[int],
    max_tokens: int,
    threads: int,
    repeat: int,
    llama_server_binary: Path | None,
    context: int = 8192,
    parallel: int = 16,
) -> dict:
    """Every side at every number of streams; llama-server is skipped when its binary is None,
    the orchestrator when its environment is None."""
    from loadtest.bench import servers
    from loadtest.bench.llama_server import binary_version

    report = {
        "command": command_line(),
        "machine": machine_facts(),
        "max_tokens": max_tokens,
        "threads": threads,
        "repeat": repeat,
        "streams": concurrencies,
        "sides": {},
    }
    with ExitStack() as stack:
        ceiling = Ceiling(threads, max(concurrencies), context)
        stack.callback(ceiling.close)
        sides: dict[str, Side] = {"ceiling": lambda n, ref: ceiling(n, max_tokens, ref)}
        report["sides"]["ceiling"] = "llama.cpp batch decode in process (llama-cpp-python)"
        if llama_server_binary is not None:
            base = stack.enter_context(
                llama_server(
                    llama_server_binary, threads=threads, parallel=parallel, context=context
                )
            )
            warmed_up("llama_server", asyncio.run(llama_server_streams(base, ceiling.texts(1), 4)))
            sides["llama_server"] = lambda n, ref: asyncio.run(
                llama_server_streams(base, ceiling.texts(n, ref), max_tokens)
            )
            version = binary_version(llama_server_binary)
            report["sides"]["llama_server"] = (
                f"llama-server --parallel {parallel} --cont-batching ({version}), "
                f"{llama_server_binary}"
            )
        warmed_up("triton", asyncio.run(triton_streams(url, prompts(1), 4)))
        sides["triton"] = lambda n, ref: asyncio.run(
            triton_streams(url, prompts(n, ref), max_tokens)
        )
        report["sides"]["triton"] = "Triton `llm` over gRPC streams"
        if orchestrator_env is not None:
            served = stack.enter_context(
                servers.orchestrator(orchestrator_env, scopes=("chat",), ready_path="/healthz")
            )
            warm = orchestrator_streams(served.base_url, served.api_key, prompts(1), 4)
            warmed_up("orchestrator", asyncio.run(warm))
            sides["orchestrator"] = lambda n, ref: asyncio.run(
                orchestrator_streams(served.base_url, served.api_key, prompts(n, ref), max_tokens)
            )
            report["sides"]["orchestrator"] = "orchestrator /v1/chat/completions (openai client)"
        report["results"] = side_by_side(sides, concurrencies, repeat)
    report["ratios"] = ratios(report["results"])
    report["prompt_tokens_match"] = prompt_tokens_match(report["results"])
    report["aims"] = aims(report["results"])
    return report
