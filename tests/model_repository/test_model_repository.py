"""The committed configs: valid Triton protobuf text, and an ensemble whose tensors line up.

The same repository must load in NGC's tritonserver container (native ONNX Runtime backend),
which cannot run here; parsing with Triton's own ModelConfig schema and checking every mapped
tensor's type and shape is what can be checked offline.
"""

from pathlib import Path

import pytest

from export.repository import COMMITTED_REPOSITORY
from orchestrator.triton.model_config import read_config

MODELS = sorted(p.parent.name for p in COMMITTED_REPOSITORY.glob("*/config.pbtxt"))


def _config(name: str):
    return read_config(COMMITTED_REPOSITORY / name)


@pytest.mark.parametrize("name", MODELS)
def test_config_parses_with_tritons_schema_and_names_its_folder(name):
    config = _config(name)
    assert config.name == name
    assert config.backend in ("python", "onnxruntime") or config.platform == "ensemble"


def test_every_batched_step_batches_dynamically():
    for name in ("ticket_tokenizer", "ticket_encoder", "ticket_classifier", "ticket_intent",
                 "credit_features", "credit_model"):  # fmt: skip
        config = _config(name)
        assert config.max_batch_size >= 64, name
        assert config.HasField("dynamic_batching"), name


@pytest.mark.parametrize(
    "name", ["ticket_triage", "ticket_triage_steps", "xray_diagnosis", "credit_scoring"]
)
def test_ensemble_steps_map_tensors_of_matching_type_and_shape(name):
    ensemble = _config(name)
    produced = {i.name: (i.data_type, list(i.dims)) for i in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = _config(step.model_name)
        assert model.max_batch_size >= ensemble.max_batch_size, step.model_name
        inputs = {i.name: (i.data_type, list(i.dims)) for i in model.input}
        for model_input, tensor in step.input_map.items():
            assert produced[tensor] == inputs[model_input], (step.model_name, model_input)
        outputs = {o.name: (o.data_type, list(o.dims)) for o in model.output}
        for model_output, tensor in step.output_map.items():
            produced[tensor] = outputs[model_output]
    for output in ensemble.output:
        assert produced[output.name] == (output.data_type, list(output.dims)), output.name


def test_generated_files_are_ignored_by_git():
    ignore = (Path(COMMITTED_REPOSITORY).parent / ".gitignore").read_text()
    assert "model_repository/*/[0-9]*/*" in ignore


@pytest.mark.parametrize("name", ["ticket_tokenizer", "ticket_intent"])
def test_the_text_limit_is_the_contracts(name):
    from contracts.models import MAX_TEXT_BYTES

    parameters = _config(name).parameters
    assert int(parameters["max_text_bytes"].string_value) == MAX_TEXT_BYTES


def test_the_served_ensemble_answers_as_the_chained_steps_do():
    served, chained = _config("ticket_triage"), _config("ticket_triage_steps")
    assert [s.model_name for s in served.ensemble_scheduling.step] == ["ticket_intent"]
    assert list(served.input) == list(chained.input)
    assert list(served.output) == list(chained.output)
