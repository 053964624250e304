"""mock_llm: a decoupled Python model that answers like `llm`, without a language model.

For fast, deterministic tests of streaming and its error paths (Triton's OpenAI frontend
tests its streaming the same way). It takes the `llm` model's tensors (the test fixture
serves it under the `llm` model's own config.pbtxt) and replies with the words of the last
message, one response per word when streaming, honouring `max_tokens` ("length") and
`stop_words`. What it does is set per request, by request parameters (Triton's way), or, for
requests that come through the orchestrator (which sends only tensors), by a JSON object as
the last message's content, `{"mock": {...}, "reply": "..."}`:

    repeat      the reply this many times (default 1)
    delay_ms    sleep before each response (default 0)
    fail_after  send an error instead of the piece after this many pieces (0: fail at once)

A cancelled request stops at the next piece; every request ends with the final flag. With
`ignore_eos` the reply does not end where its words do: they come round again until
`max_tokens`, as a real model goes on past its end of sequence.
"""

import json
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
OPTIONS = {"repeat": 1, "delay_ms": 0, "fail_after": -1}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException(f"{config['name']} must be decoupled")
        self.in_flight: set[threading.Thread] = set()
        self.lock = threading.Lock()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                job = _job(request)
            except ValueError as error:
                _send_error(sender, str(error))
                continue
            thread = threading.Thread(target=self._reply, args=(sender, job), daemon=True)
            with self.lock:
                self.in_flight.add(thread)
            thread.start()
        return None

    def finalize(self):
        with self.lock:
            threads = list(self.in_flight)
        for thread in threads:
            thread.join(10)

    def _reply(self, sender, job: dict) -> None:
        try:
            _stream(sender, job)
        except Exception as error:  # a bug here must still close the stream, not hang it
            _send_error(sender, f"mock_llm: {error!r}")
        finally:
            with self.lock:
                self.in_flight.discard(threading.current_thread())


def _job(request) -> dict:
    prompt = _text(request, "messages") or _text(request, "text_input")
    if prompt is None:
        raise ValueError("send text_input or messages")
    options = dict(OPTIONS)
    options.update(json.loads(request.parameters() or "{}"))
    reply = prompt
    if _text(request, "messages") is not None:
        reply = json.loads(prompt)[-1]["content"]
        try:
            directed = json.loads(reply)
        except json.JSONDecodeError:
            directed = None
        if isinstance(directed, dict) and "mock" in directed:
            options.update(directed["mock"])
            reply = directed.get("reply", "")
    stop = pb_utils.get_input_tensor_by_name(request, "stop_words")
    words = reply.split() * int(options["repeat"])
    max_tokens = int(_scalar(request, "max_tokens", 128))
    if bool(_scalar(request, "ignore_eos", False)) and words:
        words = [words[i % len(words)] for i in range(max_tokens + 1)]  # + 1: ends on length
    return {
        "words": words,
        "prompt_tokens": len(prompt.split()),
        "max_tokens": max_tokens,
        "stream": bool(_scalar(request, "stream", False)),
        "stop": [w.decode() for w in stop.as_numpy().reshape(-1)] if stop is not None else [],
        "delay_s": float(options["delay_ms"]) / 1000,
        "fail_after": int(options["fail_after"]),
    }


def _stream(sender, job: dict) -> None:
    pieces: list[str] = []
    reason = "stop"
    for word in job["words"]:
        time.sleep(job["delay_s"])
        if sender.is_cancelled():
            sender.send(None, flags=FINAL)
            return
        if len(pieces) == job["fail_after"]:
            _send_error(sender, f"mock failure after {len(pieces)} pieces")
            return
        if len(pieces) == job["max_tokens"]:
            reason = "length"
            break
        piece = word if not pieces else " " + word
        if any(stop in piece for stop in job["stop"]):
            break
        pieces.append(piece)
        if job["stream"]:
            sender.send(pb_utils.InferenceResponse(output_tensors=[_bytes("text_output", piece)]))
    if len(pieces) == job["fail_after"]:  # fail_after as long as the reply: fail at the end
        _send_error(sender, f"mock failure after {len(pieces)} pieces")
        return
    final = [
        _bytes("text_output", "" if job["stream"] else "".join(pieces)),
        _bytes("finish_reason", reason),
        _int("num_input_tokens", job["prompt_tokens"]),
        _int("num_output_tokens", len(pieces)),
    ]
    sender.send(pb_utils.InferenceResponse(output_tensors=final), flags=FINAL)


def _text(request, name: str) -> str | None:
    value = _scalar(request, name)
    return value.decode() if isinstance(value, bytes) else value


def _scalar(request, name: str, default=None):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0]


def _bytes(name: str, text: str):
    return pb_utils.Tensor(name, np.array([[text.encode()]], dtype=object))


def _int(name: str, value: int):
    return pb_utils.Tensor(name, np.array([[value]], dtype=np.int32))


def _send_error(sender, message: str) -> None:
    sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), flags=FINAL)
