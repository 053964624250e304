"""The GPU path: configs rewritten for KIND_GPU (TensorRT fp16 or CUDA) and back, the providers
a GPU instance asks for, and the served model on a GPU against the CPU where one exists."""

import json
import shutil

import pytest
import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import json_format, text_format

from contracts.runtime import ProviderUnavailable, instance_providers, ort_session
from export.device import config_for, set_device
from export.repository import COMMITTED_REPOSITORY

ONNX_MODELS = ["ticket_encoder", "ticket_classifier", "ticket_intent", "xray_classifier"]
# other backends, and credit_model, whose tree ensemble has no GPU kernel ("# device: cpu only")
OTHER_MODELS = ["ticket_tokenizer", "ticket_triage", "ticket_triage_steps", "llm", "credit_model"]


def _committed(model: str) -> str:
    return (COMMITTED_REPOSITORY / model / "config.pbtxt").read_text()


def _parsed(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_gpu_with_tensorrt_declares_kind_gpu_and_fp16_engines(model):
    config = _parsed(config_for(_committed(model), "gpu", "tensorrt"))
    assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert accelerator.parameters["trt_engine_cache_enable"] == "1"


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_gpu_with_cuda_declares_kind_gpu_without_tensorrt(model):
    config = _parsed(config_for(_committed(model), "gpu", "cuda"))
    assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator


@pytest.mark.parametrize("model", OTHER_MODELS)
def test_models_on_other_backends_are_left_alone(model):
    assert config_for(_committed(model), "gpu", "tensorrt") == _committed(model)


def test_a_repository_goes_to_the_gpu_and_back_to_its_exact_cpu_configs(tmp_path):
    repository = tmp_path / "repository"
    shutil.copytree(COMMITTED_REPOSITORY, repository, ignore=shutil.ignore_patterns("*.onnx"))
    served = repository / "ticket_intent" / "configs" / "served.pbtxt"
    served.parent.mkdir(exist_ok=True)
    served.write_text(_committed("ticket_intent"))  # as `export publish` writes one

    changed = set_device(repository, "gpu", "tensorrt")
    assert sorted(p.relative_to(repository).as_posix() for p in changed) == sorted(
        [f"{m}/config.pbtxt" for m in ONNX_MODELS] + ["ticket_intent/configs/served.pbtxt"]
    )
    assert _parsed(served.read_text()).instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert set_device(repository, "gpu", "tensorrt") == []  # already there: nothing rewritten
    set_device(repository, "gpu", "cuda")  # the TensorRT lines go, not doubled
    assert "tensorrt" not in (repository / "ticket_intent" / "config.pbtxt").read_text()

    set_device(repository, "cpu")
    for model in ONNX_MODELS:
        assert (repository / model / "config.pbtxt").read_text() == _committed(model)
    assert served.read_text() == _committed("ticket_intent")


def _triton_json(text: str) -> dict:
    """The config as Triton hands it to a Python-based backend (args["model_config"])."""
    message = json_format.MessageToJson(_parsed(text), preserving_proto_field_name=True)
    return json.loads(message)


def test_a_gpu_instance_asks_for_tensorrt_fp16_then_cuda_then_the_cpu():
    config = _triton_json(config_for(_committed("ticket_intent"), "gpu", "tensorrt"))
    providers = instance_providers(config, "GPU", device_id=1)
    assert [p if isinstance(p, str) else p[0] for p in providers] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    options = providers[0][1]
    assert options["device_id"] == 1 and options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_path"] == "/tmp/trt_engine_cache"

    cuda = _triton_json(config_for(_committed("ticket_intent"), "gpu", "cuda"))
    assert instance_providers(cuda, "GPU")[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert instance_providers(cuda, "CPU") is None


def test_a_provider_onnxruntime_lacks_is_refused_by_name(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: nothing to refuse")
    with pytest.raises(ProviderUnavailable, match="no CUDAExecutionProvider"):
        ort_session(tmp_path / "model.onnx", providers=["CUDAExecutionProvider"])


@pytest.mark.parametrize("accelerator", ["cuda", "tensorrt"])
def test_the_served_model_on_a_gpu_agrees_with_the_cpu(accelerator, request, tmp_path):
    from contracts.models import INTENT_FILE
    from export.data import load_banking77
    from export.gpu_parity import MIN_AGREEMENT, compare, unavailable_reason

    reason = unavailable_reason(accelerator)
    if reason is not None:
        pytest.skip(f"GPU parity ({accelerator}) not run: {reason}")
    repository, _ = request.getfixturevalue("built_repository")
    settings = request.getfixturevalue("export_settings")
    data = load_banking77(settings.banking77_dir)
    result = compare(
        repository / INTENT_FILE, data.test.head(640), data.intents, accelerator, tmp_path
    )
    print(json.dumps(result))
    assert result["ran"], result
    assert result["intent_agreement"] >= MIN_AGREEMENT
    assert abs(result["accuracy"]["gpu"] - result["accuracy"]["cpu"]) <= 0.005
