"""Settings read from the environment, one class per component, each with its own prefix."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import PROJECT_ROOT
from contracts.models import SERVED_MODELS


class TritonSettings(BaseSettings):
    """Where Triton listens and what the local launcher starts (`TRITON_*`)."""

    model_config = SettingsConfigDict(env_prefix="TRITON_")

    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    grpc_port: int = Field(default=8001, ge=1, le=65535)
    metrics_port: int = Field(default=8002, ge=1, le=65535)
    model_repository: Path = PROJECT_ROOT / "model_repository"
    work_dir: Path = PROJECT_ROOT / "var" / "triton"
    log_file: Path = PROJECT_ROOT / "var" / "log" / "triton.log"
    models: tuple[str, ...] = SERVED_MODELS
    startup_timeout_s: float = 120.0
    # Triton's repository API (load/unload/index) answers only requests carrying this header
    # with this value when the secret is set (`--grpc/http-restricted-...`); never logged.
    control_header: str = Field(default="triton-repository-key", pattern=r"^[a-z0-9-]+$")
    control_secret: SecretStr | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def control_headers(self) -> dict[str, str] | None:
        """The header the repository API wants, or None when it is not restricted."""
        if self.control_secret is None:
            return None
        return {self.control_header: self.control_secret.get_secret_value()}

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"


class OrchestratorSettings(BaseSettings):
    """The public HTTP service (`ORCHESTRATOR_*`, plus `DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'var' / 'orchestrator.db'}",
        validation_alias="DATABASE_URL",
    )
    admin_key: str | None = None  # created at start when set; never logged
    triage_timeout_s: float = 10.0
    rate_limit_per_minute: float = Field(default=600, gt=0)  # per API key, per replica
    rate_limit_burst: int = Field(default=60, ge=1)
    key_cache_s: float = Field(default=30.0, ge=0)  # a key revoked elsewhere works this long here
    max_triage_texts: int = 64
    max_body_bytes: int = Field(default=1 << 20, ge=1024)  # larger bodies get 413
    ticket_wait_timeout_s: float = Field(default=30.0, gt=0, le=300)  # POST /v1/tickets?wait=true

    # The job worker: in this process by default, or `python -m orchestrator worker`.
    worker_in_process: bool = True
    worker_batch: int = Field(default=16, ge=1, le=256)  # jobs claimed, and triaged, at once
    worker_drafts: int = Field(default=4, ge=1, le=64)  # drafts generated concurrently
    worker_poll_s: float = Field(default=0.5, gt=0)
    job_max_attempts: int = Field(default=8, ge=1)
    job_backoff_base_s: float = Field(default=1.0, gt=0)  # doubles per attempt ...
    job_backoff_max_s: float = Field(default=30.0, gt=0)  # ... up to this
    job_lease_s: float = Field(default=120.0, gt=0)  # a crashed worker's jobs return after it

    # Generation
    llm_model: str = "llm"
    draft_max_tokens: int = Field(default=96, ge=1, le=1024)
    draft_timeout_s: float = Field(default=30.0, gt=0)  # then the marked fallback draft
    chat_default_max_tokens: int = Field(default=256, ge=1)
    chat_timeout_s: float = Field(default=120.0, gt=0)
    # Triton calls: short ones (index, readiness, configs), and load/unload with their wait
    # for Triton to settle and free the model's processes.
    triton_call_timeout_s: float = Field(default=10.0, gt=0)
    triton_load_timeout_s: float = Field(default=180.0, gt=0)
    webhook_tolerance_s: int = Field(default=300, ge=1)  # signed timestamps older are refused
