"""Reading the ensemble's answer: the predictions and the model version Triton names."""

import asyncio

import numpy as np
from tritonclient.grpc import InferResult, service_pb2
from tritonclient.utils import serialize_byte_tensor

from orchestrator.triton.triage_client import (
    BACKGROUND,
    INTERACTIVE,
    TriageClient,
    TritonUnavailable,
    predictions,
)


def _answer(model_version: str) -> InferResult:
    """A ModelInferResponse as Triton sends it for two texts (raw output contents)."""
    top = np.array([[b"card_arrival", b"pin_blocked"], [b"pin_blocked", b"card_arrival"]], object)
    outputs = {
        "intent": ("BYTES", np.array([[b"card_arrival"], [b"pin_blocked"]], dtype=object)),
        "confidence": ("FP32", np.array([[0.75], [0.5]], dtype=np.float32)),
        "top_intents": ("BYTES", top),
        "top_scores": ("FP32", np.array([[0.75, 0.25], [0.5, 0.5]], dtype=np.float32)),
    }
    response = service_pb2.ModelInferResponse(
        model_name="ticket_triage", model_version=model_version
    )
    for name, (datatype, array) in outputs.items():
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        raw = serialize_byte_tensor(array).item() if datatype == "BYTES" else array.tobytes()
        response.raw_output_contents.append(raw)
    return InferResult(response)


def test_each_prediction_names_the_model_version_that_answered():
    first, second = predictions(_answer("1"), 2)
    assert (first.intent, first.confidence, first.model_version) == ("card_arrival", 0.75, "1")
    assert second.top == [("pin_blocked", 0.5), ("card_arrival", 0.5)]
    assert second.model_version == "1"
    assert predictions(_answer(""), 2)[0].model_version is None  # not named: not recorded


class _RecordingInfer:
    """tritonclient's aio client, as far as classify() uses it."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.priorities: list[int] = []

    async def infer(self, model_name, inputs, model_version="", **options):
        self.calls.append((model_name, model_version))
        self.priorities.append(options.get("priority", 0))
        return _answer("1")  # a per-version ensemble has one version of its own


def test_the_priority_asked_reaches_triton_and_the_default_is_the_background_level():
    async def scenario() -> list[int]:
        client = TriageClient("127.0.0.1:1")
        await client.close()
        client._client = recording = _RecordingInfer()
        await client.classify(["my card"])
        await client.classify(["my card"], priority=INTERACTIVE)
        return recording.priorities

    assert asyncio.run(scenario()) == [BACKGROUND, INTERACTIVE] == [2, 1]


def test_each_triage_version_is_asked_of_its_own_ensemble_and_reported():
    async def scenario(model: str) -> tuple[list[tuple[str, str]], list]:
        client = TriageClient("127.0.0.1:1", model)  # built in the loop; nothing is dialled
        await client.close()
        client._client = recording = _RecordingInfer()
        chosen = await client.classify(["my card", "my pin"], 2)
        await client.classify(["my card", "my pin"], 1)
        await client.classify(["my card", "my pin"])
        return recording.calls, chosen

    calls, chosen = asyncio.run(scenario("ticket_triage"))
    # version 1 is the base ensemble; no version asked: Triton's own choice
    assert calls == [("ticket_triage_v2", ""), ("ticket_triage", ""), ("ticket_triage", "")]
    assert {p.model_version for p in chosen} == {"2"}  # the version routed to, not Triton's "1"
    calls, _ = asyncio.run(scenario("another_model"))  # other models: Triton's versions
    assert calls == [("another_model", "2"), ("another_model", "1"), ("another_model", "")]


class _Replica(_RecordingInfer):
    def __init__(self, down: bool = False):
        super().__init__()
        self.down = down

    async def infer(self, model_name, inputs, model_version="", **_options):
        if self.down:
            raise TritonUnavailable("connection refused")
        return await super().infer(model_name, inputs, model_version)


def test_replicas_take_each_versions_calls_in_turn_and_cover_for_one_that_is_down():
    async def scenario(replicas) -> None:
        client = TriageClient(["127.0.0.1:1", "127.0.0.1:2"])
        await client.close()
        client._clients = replicas
        for _ in range(2):  # a canary batch: two calls at a time, one per version
            await asyncio.gather(client.classify(["a"], 1), client.classify(["b"], 2))

    up = [_Replica(), _Replica()]
    asyncio.run(scenario(up))
    for replica in up:  # each version's calls alternate: both replicas see both versions
        assert sorted(replica.calls) == [("ticket_triage", ""), ("ticket_triage_v2", "")]
    covered = [_Replica(down=True), _Replica()]
    asyncio.run(scenario(covered))
    assert len(covered[1].calls) == 4  # every call answered by the replica that is up
