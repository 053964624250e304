"""ticket_intent: the fused file tokenizes as the `tokenizers` package does and answers as the
encoder and classifier run apart do."""

import numpy as np
import onnx
import pytest

from contracts.runtime import ort_session
from contracts.tokens import encode_batch
from export.data import load_banking77
from export.fuse import tokenizer_model
from export.model import load_tokenizer
from export.packaged import encoder_dir

HARD_TEXTS = [
    "Ünïcödé café naïve — test 😀",
    "Straße ﬁ ½ Ⅻ",
    "日本語のテキストと中文",
    "tabs\tand\u00a0no-break\u200bzero-width spaces",
    "ÀÉÎÕÜ ñ ç",
    "word " * 300,  # cut to 128 tokens, [SEP] last
    "x",
]


@pytest.fixture(scope="module")
def tokenizer_session(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuse") / "tokenizer.onnx"
    model = tokenizer_model((encoder_dir() / "vocab.txt").read_text(), 128, ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return ort_session(path, 1)


def _ids(session, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    feeds = {"text": np.array(texts, dtype=object).reshape(-1, 1)}
    ids, mask = session.run(None, feeds)
    return ids, mask


def test_the_graph_tokenizes_every_banking77_text_as_tokenizers_does(
    export_settings, tokenizer_session
):
    data = load_banking77(export_settings.banking77_dir)
    reference = load_tokenizer(128)
    texts = data.train.texts + data.test.texts + HARD_TEXTS
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        ids, mask = _ids(tokenizer_session, batch)
        want_ids, want_mask = encode_batch(reference, batch)
        np.testing.assert_array_equal(ids, want_ids, err_msg=f"batch at {start}")
        np.testing.assert_array_equal(mask, want_mask, err_msg=f"batch at {start}")


def test_a_long_text_is_cut_to_128_tokens_ending_with_sep(tokenizer_session):
    ids, mask = _ids(tokenizer_session, ["word " * 300, "short"])
    assert ids.shape == (2, 128)
    assert ids[0, 0] == 101 and ids[0, -1] == 102  # [CLS] ... [SEP]
    assert mask[1].sum() == 3  # [CLS] short [SEP], then padding


def test_the_fused_file_answers_as_the_separate_files(built_repository, export_settings):
    """The test build is fine-tuned, so its fused file holds two encoders: the served one and
    the packaged one whose embeddings the vote reads; the lexical view reads the token ids."""
    repository, work = built_repository[0], export_settings.work_dir
    fused_path = repository / "ticket_intent/1/model.onnx"
    fused = ort_session(fused_path, 1)
    encoder = ort_session(repository / "ticket_encoder/2/model.onnx", 1)
    example_encoder = ort_session(work / "packaged.int8.onnx", 1)
    classifier = ort_session(work / "classifier.served.onnx", 1)
    nodes = onnx.load(fused_path).graph.node
    assert any(n.name.startswith("example_encoder/") for n in nodes)
    assert any(n.op_type == "TfIdfVectorizer" for n in nodes)
    reference = load_tokenizer(128)
    texts = load_banking77(export_settings.banking77_dir).test.texts[:96] + HARD_TEXTS
    for start in range(0, len(texts), 8):
        batch = texts[start : start + 8]
        got = fused.run(None, {"text": np.array(batch, dtype=object).reshape(-1, 1)})
        ids, mask = encode_batch(reference, batch)
        tokens = {"input_ids": ids, "attention_mask": mask}
        feeds = {
            "embedding": encoder.run(None, tokens)[0],
            "example_embedding": example_encoder.run(None, tokens)[0],
            "input_ids": ids,
        }
        want = classifier.run(None, feeds)
        assert (got[0] == want[0]).all()  # intents
        np.testing.assert_allclose(got[3], want[3], atol=1e-5)  # top scores
