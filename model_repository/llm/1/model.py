"""llm: a decoupled Python-backend model that streams text as the scheduler produces it.

Each request is parsed here, handed to the `llm_engine` scheduler (which batches the decode
steps of all running requests), and answered through its response sender: one response per
new piece of text when streaming, or one with the whole text, and always a final flag, on
success, error, cancellation and unload alike.
"""

import contextlib
import json
import queue
import threading
import uuid

import numpy as np
import triton_python_backend_utils as pb_utils

from llm_engine.chat import parse_messages
from llm_engine.config import LLMConfig
from llm_engine.factory import create_engine
from llm_engine.metrics import FAMILIES, PREFIX
from llm_engine.sampling import SamplingParams
from llm_engine.scheduler import Finish, FinishReason, Observer, Priority, Request, Scheduler

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException(f"{config['name']} must be decoupled to stream")
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        settings = LLMConfig.from_parameters(params)
        self.default_max_tokens = settings.default_max_tokens
        engine = create_engine(settings)
        name, version = config["name"], args["model_version"]
        # `load` names this instance: Triton 2.51 shares a custom metric between the old and the
        # new instance of a reloaded model when their labels match, and frees it with the old
        # one while the new one still writes to it (a segfault of the whole server; Triton
        # issue #8663). Each load's own series avoid that; dashboards sum over `load`.
        load = uuid.uuid4().hex[:8]
        labels = {"model": name, "version": version, "engine": engine.name, "load": load}
        self.outbox = Outbox()
        self.scheduler = Scheduler(
            engine,
            max_active=settings.max_active_sequences,
            step_token_budget=settings.step_tokens,
            prefill_chunk=settings.prefill_chunk,
            prefix_cache_entries=settings.prefix_cache_entries,
            max_waiting=settings.max_waiting,
            queue_timeout_s=settings.queue_timeout_s,
            observer=Posted(TritonMetrics(labels), self.outbox),
            going_away=lambda: not pb_utils.is_model_ready(name, version),
        ).start()
        self.engine = engine

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt, params, priority, options = self._parse(request)
            except ValueError as error:
                _send_error(sender, str(error))
                continue
            reply = Reply(sender, self.outbox, **options)
            self.scheduler.submit(
                Request(
                    prompt,
                    params,
                    reply.on_text,
                    reply.on_finish,
                    is_cancelled=reply.is_cancelled,
                    priority=priority,
                )
            )
        return None

    def finalize(self):
        """Free what the model holds, so that its process can exit and give the memory back.

        Triton calls this once every stream has ended; the scheduler's thread is stopped
        first, and the engine (llama.cpp's context and weights) is freed only once that
        thread is gone: freeing it under a running step would crash the process instead.
        """
        self.scheduler.stop("the llm model is unloading")
        self.outbox.close()  # the last responses and metrics go out first
        if self.scheduler.running:
            print("llm: the scheduler did not stop; its engine is kept", flush=True)
            return
        close = getattr(self.engine, "close", None)
        if close:
            close()
        self.scheduler = self.engine = None

    def _parse(self, request) -> tuple[str, SamplingParams, Priority, dict]:
        messages = _scalar(request, "messages")
        text = _scalar(request, "text_input")
        if messages is not None:
            prompt = self.engine.render_chat(parse_messages(messages))
        elif text is not None:
            prompt = _decode(text, "text_input")
        else:
            raise ValueError("send text_input or messages")
        stop = pb_utils.get_input_tensor_by_name(request, "stop_words")
        stop_words = (
            ()
            if stop is None
            else tuple(_decode(w, "stop_words") for w in stop.as_numpy().reshape(-1))
        )
        seed = _scalar(request, "seed")
        params = SamplingParams(
            max_tokens=int(_scalar(request, "max_tokens", self.default_max_tokens)),
            temperature=float(_scalar(request, "temperature", 0.0)),
            top_p=float(_scalar(request, "top_p", 1.0)),
            frequency_penalty=float(_scalar(request, "frequency_penalty", 0.0)),
            presence_penalty=float(_scalar(request, "presence_penalty", 0.0)),
            seed=None if seed is None else int(seed),
            stop=tuple(w for w in stop_words if w),
            ignore_eos=bool(_scalar(request, "ignore_eos", False)),
        )
        priority = Priority.parse(_decode(_scalar(request, "priority", "interactive"), "priority"))
        options = {
            "stream": bool(_scalar(request, "stream", False)),
            "counts_every_response": bool(_scalar(request, "return_num_input_tokens", False))
            or bool(_scalar(request, "return_num_output_tokens", False)),
        }
        return prompt, params, priority, options


class Outbox:
    """Sends responses and metric updates from a thread of its own, in the order they are made.

    Each send and each metric update is a message to the Triton server that waits for its
    answer; made on the scheduler's thread they held up every step, by about a millisecond a
    token at one stream (0.83x llama-server's tokens/s with them there, 1.02x with this
    outbox, in back-to-back runs). Here the next step's decode runs while they go out.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="llm-outbox", daemon=True)
        self._thread.start()

    def put(self, function, *args) -> None:
        self._queue.put((function, args))

    def close(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            function, args = item
            try:
                function(*args)
            except Exception as error:  # one failed send or metric must not stop the rest
                print(f"llm: outbox: {error!r}", flush=True)
            del item, function, args  # hold no reply (and so no sender) while waiting


class Posted(Observer):
    """An Observer whose calls run on the outbox's thread, after the responses before them."""

    def __init__(self, inner: Observer, outbox: Outbox):
        self.inner, self.outbox = inner, outbox

    def queued(self, seconds):
        self.outbox.put(self.inner.queued, seconds)

    def first_token(self, seconds):
        self.outbox.put(self.inner.first_token, seconds)

    def token_gap(self, seconds):
        self.outbox.put(self.inner.token_gap, seconds)

    def finished(self, finish, seconds):
        self.outbox.put(self.inner.finished, finish, seconds)

    def prefix_reused(self, tokens):
        self.outbox.put(self.inner.prefix_reused, tokens)

    def preempted(self):
        self.outbox.put(self.inner.preempted)

    def rejected(self, code):
        self.outbox.put(self.inner.rejected, code)

    def state(self, running, waiting):
        self.outbox.put(self.inner.state, running, waiting)


class Reply:
    """Sends one request's responses through the outbox; every path ends with exactly one
    final flag.

    Reply holds the only reference to the request's response sender, and lets go of it with
    the final flag: Triton frees a request's response factory, and so can unload the model,
    only once the Python object is gone, and an object still reachable from the scheduler
    (or kept by a reference cycle until a garbage collection) held unloads up for good.
    The scheduler's thread calls on_text and on_finish; the outbox's thread sends.
    """

    def __init__(self, sender, outbox: Outbox, *, stream: bool, counts_every_response: bool):
        self.sender = sender
        self.outbox = outbox
        self.stream = stream
        self.counts_every_response = counts_every_response
        self.parts: list[str] = []
        self.sent_tokens = 0
        self.finishing = False  # the final flag is posted: nothing may follow it
        self.cancelled = self.checking = False

    def on_text(self, delta: str) -> None:
        if self.finishing:
            return
        if not self.stream:
            self.parts.append(delta)
            return
        self.sent_tokens += 1
        self.outbox.put(self._send_text, delta, self.sent_tokens)

    def is_cancelled(self) -> bool:
        """What the last check found; asking Triton is a round trip, so the outbox's thread
        asks (once at a time) and the scheduler reads the answer at its next poll."""
        if not self.checking:
            self.checking = True
            self.outbox.put(self._check_cancelled)
        return self.cancelled

    def _check_cancelled(self) -> None:
        sender = self.sender
        self.cancelled = sender is None or sender.is_cancelled()
        self.checking = False

    def on_finish(self, finish: Finish) -> None:
        if self.finishing:
            return  # finished already: one final flag only
        self.finishing = True
        self.outbox.put(self._send_finish, finish)

    def _send_text(self, delta: str, sent_tokens: int) -> None:
        tensors = [_bytes_tensor("text_output", delta)]
        if self.counts_every_response:
            tensors.append(_int_tensor("num_output_tokens", sent_tokens))
        self._send(pb_utils.InferenceResponse(output_tensors=tensors))

    def _send_finish(self, finish: Finish) -> None:
        try:
            self._send_final(finish)
        finally:
            self.sender = None

    def _send_final(self, finish: Finish) -> None:
        if finish.reason is FinishReason.ERROR:
            message = finish.error or "generation failed"
            # A stable "[code] " prefix lets clients tell the caller's errors from faults.
            _send_error(self.sender, f"[{finish.code}] {message}" if finish.code else message)
            return
        if finish.reason is FinishReason.CANCELLED:
            self._send(None, flags=FINAL)
            return
        text = "" if self.stream else "".join(self.parts)
        tensors = [
            _bytes_tensor("text_output", text),
            _bytes_tensor("finish_reason", finish.reason.value),
            _int_tensor("num_input_tokens", finish.prompt_tokens),
            _int_tensor("num_output_tokens", finish.generated_tokens),
        ]
        self._send(pb_utils.InferenceResponse(output_tensors=tensors), flags=FINAL)

    def _send(self, response, flags: int = 0) -> None:
        _send_safely(self.sender, response, flags)


class TritonMetrics(Observer):
    """llm_engine.metrics' families, bound through the Python backend's metrics API.

    Each update is a message to the Triton server that the outbox's thread waits for, so
    inter-token latency is observed once per decode step, as the mean gap of the tokens that
    step made (every running sequence gets its token in the same step, so their gaps are
    nearly equal), and the running/waiting gauges are set only when they change. One
    observation per token cost about a tenth of the throughput at 16 streams (0.84 of the
    ceiling with it, 0.92 without). The token counts are in the generation counter.
    """

    def __init__(self, labels: dict[str, str]):
        kinds = {
            "histogram": pb_utils.MetricFamily.HISTOGRAM,
            "counter": pb_utils.MetricFamily.COUNTER,
            "gauge": pb_utils.MetricFamily.GAUGE,
        }
        f = {
            key: pb_utils.MetricFamily(
                name=PREFIX + spec.name, description=spec.description, kind=kinds[spec.kind]
            )
            for key, spec in FAMILIES.items()
        }

        def histogram(key):
            return f[key].Metric(labels=labels, buckets=list(FAMILIES[key].buckets))

        self.ttft, self.itl, self.e2e, self.queue = map(histogram, ("ttft", "itl", "e2e", "queue"))
        self.prompt_tokens = f["prompt"].Metric(labels=labels)
        self.generation_tokens = f["generation"].Metric(labels=labels)
        self.running = f["running"].Metric(labels=labels)
        self.waiting = f["waiting"].Metric(labels=labels)
        self.prefix_hits = f["prefix"].Metric(labels=labels)
        self.preemptions = f["preempted"].Metric(labels=labels)
        self.rejected_by_code = {
            code: f["rejected"].Metric(labels={**labels, "code": code})
            for code in ("queue_full", "queue_timeout")
        }
        self.finished_by_reason = {
            reason: f["finished"].Metric(labels={**labels, "finished_reason": reason.value})
            for reason in FinishReason
        }
        self._families = f  # they must outlive their metrics
        self._last_state = None
        self._gaps: list[float] = []

    def queued(self, seconds):
        self.queue.observe(seconds)

    def first_token(self, seconds):
        self.ttft.observe(seconds)

    def token_gap(self, seconds):
        self._gaps.append(seconds)  # observed in state(), once per step

    def finished(self, finish, seconds):
        self.e2e.observe(seconds)
        self.prompt_tokens.increment(finish.prompt_tokens)
        self.generation_tokens.increment(finish.generated_tokens)
        self.finished_by_reason[finish.reason].increment(1)

    def prefix_reused(self, tokens):
        self.prefix_hits.increment(tokens)

    def preempted(self):
        self.preemptions.increment(1)

    def rejected(self, code):
        self.rejected_by_code[code].increment(1)

    def state(self, running, waiting):  # once per scheduler iteration, after its step
        if self._gaps:
            self.itl.observe(sum(self._gaps) / len(self._gaps))
            self._gaps = []
        if (running, waiting) != self._last_state:  # called every step; set only on change
            self._last_state = (running, waiting)
            self.running.set(running)
            self.waiting.set(waiting)


def _scalar(request, name: str, default=None):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise ValueError(f"{name} must hold one value, got {values.size}")
    return values[0]


def _decode(value, name: str) -> str:
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not valid UTF-8") from None


def _bytes_tensor(name: str, text: str):
    return pb_utils.Tensor(name, np.array([[text.encode()]], dtype=object))


def _int_tensor(name: str, value: int):
    return pb_utils.Tensor(name, np.array([[value]], dtype=np.int32))


def _send_error(sender, message: str) -> None:
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    error = (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
    _send_safely(sender, pb_utils.InferenceResponse(error=error), FINAL)


def _send_safely(sender, response, flags: int) -> None:
    """Send; a client that went away makes send raise, and there is nothing left to tell it.
    A final response that cannot be sent is followed by a bare final flag: Triton unloads a
    decoupled model only once every request has had its final flag."""
    try:
        sender.send(response, flags=flags)
    except Exception as error:
        print(f"llm: a response could not be sent ({error})", flush=True)
        if flags & FINAL and response is not None:
            with contextlib.suppress(Exception):
                sender.send(None, flags=FINAL)
