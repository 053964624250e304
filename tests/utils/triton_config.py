"""Model configs as the JSON that Triton's load API takes, with parameters overridden."""

from pathlib import Path

from orchestrator.triton.model_config import load_json, read_config


def config_json(folder: Path, **parameters: str) -> str:
    config = read_config(folder)
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return load_json(config)
