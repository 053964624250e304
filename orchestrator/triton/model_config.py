"""Model configs: `config.pbtxt` read with Triton's own schema, and the JSON its load API takes."""

import json
from pathlib import Path

import tritonclient.grpc.model_config_pb2 as mc
from google.protobuf import json_format, text_format

from contracts.versions import SERVED_CONFIG


def config_file(folder: Path) -> Path:
    """The config Triton reads for the model in `folder`: `configs/served.pbtxt` where
    `python -m export publish` wrote one (Triton runs with --model-config-name=served),
    else config.pbtxt."""
    served = folder / "configs" / f"{SERVED_CONFIG}.pbtxt"
    return served if served.is_file() else folder / "config.pbtxt"


def read_config(folder: Path) -> mc.ModelConfig:
    return text_format.Parse(config_file(folder).read_text(), mc.ModelConfig())


def load_json(config: mc.ModelConfig) -> str:
    """The `config` parameter of `POST /v2/repository/models/<m>/load` (protobuf field names)."""
    return json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))
