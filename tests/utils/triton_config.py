"""Model configs as the JSON that Triton's load API takes, with parameters overridden."""

import json
from pathlib import Path

import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import json_format, text_format


def config_json(folder: Path, **parameters: str) -> str:
    config = text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))
