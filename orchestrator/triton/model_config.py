"""Model configs: `config.pbtxt` read with Triton's own schema, and the JSON its load API takes."""

import json
from pathlib import Path

import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import json_format, text_format


def read_config(folder: Path) -> mc.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())


def load_json(config: mc.ModelConfig) -> str:
    """The `config` parameter of `POST /v2/repository/models/<m>/load` (protobuf field names)."""
    return json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))
