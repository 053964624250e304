"""Settings of the export pipeline, read from `EXPORT_*` environment variables."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import PROJECT_ROOT


class ExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXPORT_")

    # Banking77 is read where it lies and never copied into the project.
    banking77_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "banking77"
    model_repository: Path = PROJECT_ROOT / "model_repository"
    work_dir: Path = PROJECT_ROOT / "var" / "export"
    torch_threads: int = Field(default=2, ge=1)
    seed: int = 13
