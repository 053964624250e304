"""The xray_diagnosis ensemble served by a real Triton from the wheel: PNG bytes in, the same
answer as the installed ONNX file gives in process; bad bytes refused alone."""

import concurrent.futures
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from contracts.images import BAD_IMAGE, image_statistics, normalise
from contracts.xray import XRAY_ENSEMBLE, XRAY_FILE
from export.settings import ExportSettings
from export.xray.data import load_pneumoniamnist
from export.xray.onnx_files import served_outputs
from tests.utils.images import hostile_images, png_of

IMAGES = 40


@pytest.fixture(scope="module")
def grpc(triton_settings, triton):
    return grpcclient.InferenceServerClient(triton_settings.grpc_url)


@pytest.fixture(scope="module")
def test_split():
    return load_pneumoniamnist(ExportSettings().pneumoniamnist_dir)["test"].head(IMAGES)


def _images(items: list[bytes]):
    tensor = grpcclient.InferInput("image", [len(items), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[item] for item in items], dtype=object))
    return [tensor]


def test_the_ensemble_answers_as_the_installed_file(grpc, built_repository, test_split):
    expected = served_outputs(built_repository[0] / XRAY_FILE, test_split.images)
    result = grpc.infer(XRAY_ENSEMBLE, _images([png_of(p) for p in test_split.images]))
    np.testing.assert_allclose(
        result.as_numpy("probability")[:, 0], expected["probability"], atol=1e-6
    )
    np.testing.assert_array_equal(result.as_numpy("label")[:, 0], expected["label"])
    np.testing.assert_allclose(result.as_numpy("threshold")[:, 0], expected["threshold"])
    mean, std = image_statistics(normalise(test_split.images))
    np.testing.assert_allclose(result.as_numpy("image_mean")[:, 0], mean, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("image_std")[:, 0], std, atol=1e-5)
    np.testing.assert_allclose(mean, test_split.images.reshape(IMAGES, -1).mean(1) / 255, atol=1e-5)


@pytest.mark.parametrize("name", list(hostile_images(b"\x89PNG\r\n\x1a\n")))
def test_bad_bytes_are_refused_with_their_reason_and_the_server_survives(grpc, test_split, name):
    data, word = hostile_images(png_of(test_split.images[0]))[name]
    started = time.perf_counter()
    with pytest.raises(InferenceServerException) as refused:
        grpc.infer(XRAY_ENSEMBLE, _images([data]))
    assert time.perf_counter() - started < 1.0
    assert BAD_IMAGE in refused.value.message() and word.lower() in refused.value.message().lower()
    assert grpc.is_model_ready(XRAY_ENSEMBLE)


def test_one_bad_image_does_not_sink_its_batch_mates(grpc, test_split):
    """Sent at once, so that the dynamic batcher puts them in one batch."""
    good = [png_of(p) for p in test_split.images[:8]]
    bad = hostile_images(good[0])["truncated"][0]

    def call(item):
        try:
            return float(grpc.infer(XRAY_ENSEMBLE, _images([item])).as_numpy("probability")[0, 0])
        except InferenceServerException as error:
            return error.message()

    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        answers = list(pool.map(call, [*good[:4], bad, *good[4:]]))
    assert isinstance(answers[4], str) and "truncated" in answers[4]
    assert all(isinstance(a, float) for i, a in enumerate(answers) if i != 4)
