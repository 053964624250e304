"""Settings of the export pipeline, read from `EXPORT_*` environment variables (and
`DATABASE_URL`, the orchestrator's, for the corrections `python -m export dataset` reads)."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import PROJECT_ROOT
from contracts.registry import RegistrySettings
from contracts.storage import DEFAULT_DATABASE_URL


class ExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXPORT_")

    # Banking77 is read where it lies and never copied into the project.
    banking77_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "banking77"
    # PneumoniaMNIST (the x-ray classifier), read in place likewise
    pneumoniamnist_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "pneumoniamnist"
    credit_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "credit"
    model_repository: Path = PROJECT_ROOT / "model_repository"
    work_dir: Path = PROJECT_ROOT / "var" / "export"
    # Training snapshots (`python -m export dataset`), one folder each, named by content hash.
    datasets_dir: Path = PROJECT_ROOT / "var" / "datasets"
    # Retrained candidates that passed the gate, as numbered versions; never the live repository.
    candidates_dir: Path = PROJECT_ROOT / "var" / "candidates"
    # The orchestrator's database, where agents' corrections are: the orchestrator's setting.
    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    torch_threads: int = Field(default=2, ge=1)
    # Where retrain records its runs and candidates (MLflow; `REGISTRY_*`, MLFLOW_TRACKING_URI).
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    seed: int = 13
    # Where the served ONNX models run (export/device.py): a GPU build fuses the fp32 encoder
    # (dynamic INT8's operators have no TensorRT or full CUDA kernels) and writes KIND_GPU
    # configs, with TensorRT fp16 engines or plain CUDA.
    device: Literal["cpu", "gpu"] = "cpu"
    gpu_accelerator: Literal["cuda", "tensorrt"] = "tensorrt"
