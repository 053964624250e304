"""The ticket_triage ensemble served by a real Triton from the wheel: its one step is the fused
ticket_intent (tokenizer operator, encoders, the head blended with the vote); the reference is
that file run in process (tests/export/test_fuse.py holds it to the files it was made from),
and for the chained ticket_triage_steps the encoder and the head alone."""

import concurrent.futures
import re

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from contracts.runtime import ort_session
from export.build import intent_predictions
from export.data import Split, load_banking77
from export.model import load_tokenizer

TEXTS = [
    "I still have not received my new card, it has been two weeks",
    "Someone stole my card, please block it",
    "Why was I charged a fee for my transfer?",
    "How do I change my PIN?",
]


def _text_input(module, texts: list, shape=None):
    array = np.array([t if isinstance(t, bytes) else t.encode() for t in texts], dtype=object)
    tensor = module.InferInput("text", list(shape or (len(texts), 1)), "BYTES")
    tensor.set_data_from_numpy(array.reshape(shape or (len(texts), 1)))
    return tensor


@pytest.fixture(scope="module")
def grpc(triton_settings, triton):
    return grpcclient.InferenceServerClient(triton_settings.grpc_url)


@pytest.fixture(scope="module")
def http(triton_settings, triton):
    return httpclient.InferenceServerClient(triton_settings.http_url)


@pytest.fixture(scope="module")
def in_process(built_repository):
    """What the fused file answers in process, text by text (as the served model sees them)."""
    session = ort_session(built_repository[0] / "ticket_intent/1/model.onnx", 1)

    def predict(texts: list[str]) -> list[str]:
        feeds = ({"text": np.array([[text]], dtype=object)} for text in texts)
        return [str(session.run(["intent"], feed)[0][0, 0]) for feed in feeds]

    return predict


@pytest.fixture(scope="module")
def head_in_process(built_repository):
    """What the INT8 encoder and the head alone answer in process: the chained steps' model."""
    repository = built_repository[0]
    tokenizer = load_tokenizer(128)
    encoder = ort_session(repository / "ticket_encoder/2/model.onnx", 1)
    classifier = ort_session(repository / "ticket_classifier/1/model.onnx", 1)

    def predict(texts: list[str]) -> list[str]:
        answers = []
        for text in texts:  # one by one: no padding, as the served model sees them
            ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            embedding = encoder.run(None, feeds)[0]
            answers.append(classifier.run(["intent"], {"embedding": embedding})[0][0, 0])
        return [str(a) for a in answers]

    return predict


def test_grpc_and_http_return_the_exported_models_intents_for_a_batch(grpc, http, in_process):
    expected = in_process(TEXTS)
    for client, module in ((grpc, grpcclient), (http, httpclient)):
        result = client.infer("ticket_triage", [_text_input(module, TEXTS)])
        intents = [x.decode() for x in result.as_numpy("intent")[:, 0]]
        assert intents == expected
        confidence = result.as_numpy("confidence")[:, 0]
        scores = result.as_numpy("top_scores")
        assert result.as_numpy("top_intents").shape == (len(TEXTS), 5)
        assert np.allclose(confidence, scores[:, 0])
        assert np.all(np.diff(scores, axis=1) <= 0)  # sorted, best first
        assert np.all((scores > 0) & (scores <= 1))


def test_served_accuracy_equals_the_exported_models(export_settings, built_repository, grpc):
    """Triton adds no error of its own: same accuracy as ONNX Runtime in process, above chance."""
    data = load_banking77(export_settings.banking77_dir)
    split = Split(data.test.texts[::10], data.test.labels[::10])
    served = []
    for start in range(0, len(split), 64):  # the ensemble's max_batch_size
        chunk = split.texts[start : start + 64]
        result = grpc.infer("ticket_triage", [_text_input(grpcclient, chunk)])
        served += [x.decode() for x in result.as_numpy("intent")[:, 0]]
    hits = sum(s == data.intents[y] for s, y in zip(served, split.labels, strict=True))
    fused = intent_predictions(built_repository[0] / "ticket_intent/1/model.onnx", split.texts)
    reference = sum(p == data.intents[y] for p, y in zip(fused.intents, split.labels, strict=True))
    assert hits / len(split) == pytest.approx(reference / len(split), abs=0.02)
    assert hits / len(split) > 0.25  # 77 intents: chance is 1.3 %


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "text[0] is empty"),
        (b"   \n\t ", "text[0] is empty"),
        (b"\xff\xfe not utf-8", "text[0] is not valid UTF-8"),
        (b"x" * 20_000, "text[0] is 20000 bytes; the limit is 16384"),
    ],
)
def test_bad_text_gets_a_clear_error_and_the_server_survives(grpc, http, text, reason):
    with pytest.raises(InferenceServerException, match=re.escape(reason)):
        grpc.infer("ticket_triage", [_text_input(grpcclient, [text])])
    with pytest.raises(InferenceServerException, match=re.escape(reason)):
        http.infer("ticket_triage", [_text_input(httpclient, [text])])
    assert grpc.is_server_live() and grpc.is_model_ready("ticket_triage")


def test_one_bad_request_does_not_sink_its_batch_mates(grpc):
    texts = [TEXTS[0], b"", TEXTS[1], b"\xff"] * 4

    def call(text):
        try:
            return grpc.infer("ticket_triage", [_text_input(grpcclient, [text])]).as_numpy(
                "intent"
            )[0, 0]
        except InferenceServerException as error:
            return error

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, texts))
    good = [a for t, a in zip(texts, answers, strict=True) if t in (TEXTS[0], TEXTS[1])]
    bad = [a for t, a in zip(texts, answers, strict=True) if t not in (TEXTS[0], TEXTS[1])]
    assert all(isinstance(a, bytes) for a in good)
    assert all(isinstance(a, InferenceServerException) for a in bad)


def test_wrong_shapes_and_types_are_refused(grpc, http):
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        grpc.infer("ticket_triage", [_text_input(grpcclient, TEXTS, shape=(2, 2))])
    wrong_type = httpclient.InferInput("text", [1, 1], "FP32")
    wrong_type.set_data_from_numpy(np.zeros((1, 1), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"data-type is 'FP32'"):
        http.infer("ticket_triage", [wrong_type])
    too_many = [TEXTS[0]] * 65  # max_batch_size is 64
    with pytest.raises(InferenceServerException, match="batch"):
        grpc.infer("ticket_triage", [_text_input(grpcclient, too_many)])
    assert grpc.is_server_ready()


def _intent_counts(metrics_url: str) -> tuple[float, float]:
    text = httpx.get(metrics_url).text
    counts = {}
    for name in ("nv_inference_count", "nv_inference_exec_count"):
        pattern = rf'^{name}{{model="ticket_intent",version="1"}} (\S+)$'
        counts[name] = float(re.search(pattern, text, re.M).group(1))
    return counts["nv_inference_count"], counts["nv_inference_exec_count"]


def test_the_fused_step_batches_requests_under_concurrent_load(grpc, triton_settings):
    before_inferences, before_executions = _intent_counts(triton_settings.metrics_url)
    texts = [TEXTS[i % len(TEXTS)] for i in range(256)]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda t: grpc.infer("ticket_triage", [_text_input(grpcclient, [t])]), texts))
    inferences, executions = _intent_counts(triton_settings.metrics_url)
    assert inferences - before_inferences == 256
    assert executions - before_executions < 256 / 2  # batches of more than one, on average over 2


def test_the_chained_steps_answer_as_the_encoder_and_head_alone_do(grpc, head_in_process):
    """ticket_triage_steps (tokenizer, encoder, classifier) serves the head without the vote."""
    grpc.load_model("ticket_triage_steps")
    try:
        for text in TEXTS:  # one by one, as the reference runs them
            chained = grpc.infer("ticket_triage_steps", [_text_input(grpcclient, [text])])
            assert [str(x.decode()) for x in chained.as_numpy("intent")[:, 0]] == (
                head_in_process([text])
            )
    finally:
        grpc.unload_model("ticket_triage_steps")
