"""The credit_scoring ensemble served by a real Triton from the wheel: applicants' fields in,
the same probabilities and contributions as the installed ONNX file gives in process; an
applicant out of range refused alone, naming the field."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from contracts.credit import BAD_APPLICANT, CREDIT_ENSEMBLE, CREDIT_FILE, FIELD_NAMES
from export.credit.data import load_taiwan
from export.credit.onnx_files import outputs
from export.settings import ExportSettings


@pytest.fixture(scope="module")
def grpc(triton_settings, triton):
    return grpcclient.InferenceServerClient(triton_settings.grpc_url)


@pytest.fixture(scope="module")
def test_split():
    return load_taiwan(ExportSettings().credit_dir)["test"]


def _fields(rows: np.ndarray):
    tensor = grpcclient.InferInput("fields", list(rows.shape), "INT64")
    tensor.set_data_from_numpy(rows.astype(np.int64))
    return [tensor]


def test_the_ensemble_answers_as_the_installed_file(grpc, built_repository, test_split):
    applicants = test_split.head(1000)
    expected = outputs(built_repository[0] / CREDIT_FILE, applicants.features)
    result = grpc.infer(CREDIT_ENSEMBLE, _fields(applicants.fields[list(FIELD_NAMES)].to_numpy()))
    assert np.allclose(result.as_numpy("probability"), expected["probability"], atol=1e-6)
    assert np.allclose(result.as_numpy("contributions"), expected["contributions"], atol=1e-6)
    assert result.as_numpy("contributions").shape == (1000, 21)


def test_an_applicant_out_of_range_is_refused_alone_naming_the_field(grpc, test_split):
    rows = test_split.head(3).fields[list(FIELD_NAMES)].to_numpy().copy()
    rows[1, FIELD_NAMES.index("age")] = 7
    with pytest.raises(InferenceServerException) as refused:
        grpc.infer(CREDIT_ENSEMBLE, _fields(rows))
    assert BAD_APPLICANT in refused.value.message()
    assert "applicant 1: age must be from 18 to 120" in refused.value.message()
    good = grpc.infer(CREDIT_ENSEMBLE, _fields(rows[[0, 2]]))  # the server carries on
    assert good.as_numpy("probability").shape == (2, 1)
