"""Settings read from the environment, one class per component, each with its own prefix."""

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import PROJECT_ROOT
from contracts.models import LLM_FALLBACK_MODEL, LLM_MODEL, SERVED_MODELS, TRIAGE_MAX_BATCH
from contracts.registry import RegistrySettings
from contracts.storage import DEFAULT_DATABASE_URL
from contracts.xray import MAX_IMAGE_BYTES

# A Triton model name that fits tickets.draft_source (a draft names the model that wrote it).
MODEL_NAME = r"^[A-Za-z0-9_.-]{1,20}$"
MODEL_NAME_OR_NONE = r"^[A-Za-z0-9_.-]{0,20}$"
# The bounds of a draft's model sentence, for this setting and the drafts configuration.
DRAFT_MAX_TOKENS_BOUNDS = {"ge": 8, "le": 256}


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
    # Every Triton replica's gRPC address, where Triton runs as several servers on one shared
    # repository: serving a model version (register, canary) loads it on each, and triage
    # calls take fixed addresses in turn. `dns:<name>:<port>` stands for every address of the
    # name at each use (Kubernetes: the headless Service `triton-replicas`; triage then goes
    # through the Service). Empty: the one at host:grpc_port. See triton/replicas.py.
    replicas: tuple[str, ...] = ()

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
    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    admin_key: str | None = None  # created at start when set; never logged
    triage_timeout_s: float = 10.0
    # Concurrent triage calls wait while this many Triton requests are out, then go together
    # in the next (orchestrator/triton/coalesce.py); 0: every call is its own request.
    triage_coalesce_in_flight: int = Field(default=2, ge=0)
    # Rate limits (token buckets; per deployment with REDIS_URL, else per replica). See README.
    rate_limit_per_minute: float = Field(default=600, gt=0)  # per API key
    rate_limit_burst: int = Field(default=60, ge=1)
    tenant_rate_limit_per_minute: float | None = Field(default=None, gt=0)  # None: 2x per key
    tenant_rate_limit_burst: int | None = Field(default=None, ge=1)  # None: 2x per key
    ip_rate_limit_per_minute: float = Field(default=120, gt=0)  # per client IP, without a key
    ip_rate_limit_burst: int = Field(default=30, ge=1)
    anonymous_rate_limit_per_minute: float = Field(default=1200, gt=0)  # all IPs together
    anonymous_rate_limit_burst: int = Field(default=120, ge=1)
    tenant_llm_concurrency: int = Field(default=8, ge=0)  # per tenant, per replica; 0: no cap
    tenant_llm_tokens_per_minute: int = Field(default=30_000, ge=0)  # per tenant; 0: no cap
    # Without Redis, a key revoked on another replica or by the CLI works this long here.
    key_cache_s: float = Field(default=30.0, ge=0)
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    redis_prefix: str = Field(default="support", min_length=1)  # keys are <prefix>:...
    revocation_poll_s: float = Field(default=1.0, gt=0)  # how often replicas read revocations
    max_triage_texts: int = 64
    max_body_bytes: int = Field(default=1 << 20, ge=1024)  # larger bodies get 413
    # Image diagnoses (POST /v1/diagnoses): the largest image (its body may be 16 KiB more, for
    # a multipart form's framing), how long an image and its result are kept, how often
    # expired ones are deleted, and how long one diagnosis may take in Triton.
    max_image_bytes: int = Field(default=MAX_IMAGE_BYTES, ge=1024, le=MAX_IMAGE_BYTES)
    diagnosis_retention_days: float = Field(default=30.0, gt=0)
    diagnosis_sweep_s: float = Field(default=600.0, gt=0)
    xray_timeout_s: float = Field(default=10.0, gt=0)
    credit_timeout_s: float = Field(default=10.0, gt=0)  # one call to credit_scoring
    ticket_wait_timeout_s: float = Field(default=30.0, gt=0, le=300)  # POST /v1/tickets?wait=true
    ready_timeout_s: float = Field(default=2.0, gt=0)  # each /readyz check; slower counts as down

    # The job worker: in this process by default, or `python -m orchestrator worker`.
    worker_in_process: bool = True
    # jobs one worker holds at once, triaged in one call: at most the ensemble's batch. 8, not
    # 16: a one-text POST /v1/triage waits at most for an 8-text batch (README, "One text while
    # the worker's batches run": p95 68-74 ms against 100-103 ms behind 16-text calls)
    worker_batch: int = Field(default=8, ge=1, le=TRIAGE_MAX_BATCH)
    worker_drafts: int = Field(default=4, ge=1, le=64)  # drafts generated concurrently
    worker_poll_s: float = Field(default=0.5, gt=0)
    job_max_attempts: int = Field(default=8, ge=1)  # the job's own failures; outages wait
    job_backoff_base_s: float = Field(default=1.0, gt=0)  # doubles per attempt ...
    job_backoff_max_s: float = Field(default=30.0, gt=0)  # ... up to this
    # Renewed every third of it; a crashed worker's jobs run elsewhere at most this late.
    job_lease_s: float = Field(default=30.0, ge=1)

    # Generation
    llm_model: str = LLM_MODEL  # the name chat requests give (GET /v1/models)
    # Failover (services/failover.py): the Triton model tried first and the one chat and
    # drafts fail over to ("" for none), per environment. Answers name the model that wrote
    # them. The breaker opens after this many failures of the primary in a row (errors,
    # timeouts, overload), sends traffic to the fallback for the cooldown, then probes.
    llm_primary: str = Field(default=LLM_MODEL, pattern=MODEL_NAME)
    llm_fallback: str = Field(default=LLM_FALLBACK_MODEL, pattern=MODEL_NAME_OR_NONE)
    llm_breaker_failures: int = Field(default=3, ge=1)
    llm_breaker_cooldown_s: float = Field(default=15.0, gt=0)
    # The first model's first token must come within this, else the request fails over as a
    # timeout; the second gets what is left of the request's own timeout.
    llm_failover_wait_s: float = Field(default=15.0, gt=0)
    # The model's sentence of a draft; a drafts configuration (services/configs.py) may set
    # another per environment, as it may the chat defaults below.
    draft_max_tokens: int = Field(default=40, **DRAFT_MAX_TOKENS_BOUNDS)
    draft_timeout_s: float = Field(default=30.0, gt=0)  # then the marked fallback draft
    # The agent workspace (/app): how long a sign-in lasts; whether its cookie is sent over
    # HTTPS only (set it behind a TLS proxy; a request made over https always gets it); how
    # often a queue's live-update stream looks for changed tickets, and how long one stream
    # lasts before the browser reconnects (a short one never holds up a shutdown for long).
    web_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    web_secure_cookie: bool = False
    web_events_poll_s: float = Field(default=1.0, gt=0)
    web_events_stream_s: float = Field(default=30.0, gt=0)
    chat_default_max_tokens: int = Field(default=256, ge=1)
    chat_timeout_s: float = Field(default=120.0, gt=0)
    # How long a replica keeps an active configuration before reading it again: a PUT or
    # rollback here applies at once; on other replicas and separate workers within this.
    config_cache_s: float = Field(default=5.0, ge=0)
    # The same for model versions' rollout (canary share, production): how long a promote or
    # rollback made on another replica takes to reach this one's triage.
    version_cache_s: float = Field(default=5.0, ge=0)
    # The canary's watch (services/canary.py): how often it judges (0: never), and when a
    # canary is rolled back automatically against production, once each version made
    # canary_min_calls Triton calls since the canary started.
    canary_check_s: float = Field(default=10.0, ge=0)
    canary_min_calls: int = Field(default=50, ge=1)
    canary_max_error_increase: float = Field(default=0.05, ge=0, le=1)
    canary_max_latency_ratio: float = Field(default=2.0, ge=1)
    canary_min_tickets: int = Field(default=20, ge=1)
    canary_max_override_increase: float = Field(default=0.15, ge=0, le=1)
    # Where each version move is recorded afterwards (MLflow; `REGISTRY_*`, MLFLOW_TRACKING_URI):
    # REGISTRY_ENABLED=false turns the record off; serving never waits on it.
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    # Triton calls: short ones (index, readiness, configs), and load/unload with their wait
    # for Triton to settle and free the model's processes.
    triton_call_timeout_s: float = Field(default=10.0, gt=0)
    triton_load_timeout_s: float = Field(default=180.0, gt=0)
    webhook_tolerance_s: int = Field(default=300, ge=1)  # signed timestamps older are refused
    webhook_max_json_depth: int = Field(default=32, ge=2, le=200)  # deeper payloads get 422

    # E-mail intake: parsed in worker processes, each message under these caps (else 422).
    email_parsers: int = Field(default=2, ge=1, le=64)  # worker processes, messages at once
    email_parse_timeout_s: float = Field(default=5.0, gt=0)  # then the worker is killed
    email_max_depth: int = Field(default=20, ge=1)  # MIME nesting levels
    email_max_parts: int = Field(default=200, ge=1)  # MIME parts (and boundaries declared)
    email_max_header_bytes: int = Field(default=64 * 1024, ge=1024)  # top-level header section
    email_max_headers: int = Field(default=500, ge=10)  # header fields in that section
    email_max_encoded_words: int = Field(default=1000, ge=1)  # RFC 2047 =?...?= words

    @model_validator(mode="after")
    def _distinct_llms(self) -> "OrchestratorSettings":
        if self.llm_fallback == self.llm_primary:
            raise ValueError("llm_fallback must name another model than llm_primary (or be empty)")
        return self


class DriftSettings(BaseSettings):
    """The drift monitor (`DRIFT_*`): what it compares, how often, and when it calls drift.

    A pass compares each tenant's recent triaged tickets, and all tenants' together, with a
    fixed sample of Banking77's training texts (services/drift). Sizes suit 2 CPU cores.
    """

    model_config = SettingsConfigDict(env_prefix="DRIFT_")

    interval_s: float = Field(default=3600.0, ge=0)  # the worker's periodic pass; 0: off
    window: int = Field(default=1000, ge=10, le=20_000)  # the newest tickets compared
    window_hours: float = Field(default=168.0, gt=0)  # ... of at most this age
    min_sample: int = Field(default=50, ge=10)  # fewer tickets in a scope: not compared
    reference_size: int = Field(default=500, ge=50, le=10_000)
    # Texts the model never trained on: it answers its training texts more confidently than
    # new ones (the vote finds each among its own examples), which would read as drift.
    reference_csv: Path = PROJECT_ROOT.parent / "shared" / "data" / "banking77" / "test.csv"
    reports_dir: Path = PROJECT_ROOT / "var" / "monitoring" / "reports"
    # A report is about 4 MB (Evidently inlines its scripts), one per scope and pass: older
    # ones are deleted after each pass; their runs' numbers stay in the database.
    report_days: float = Field(default=7.0, gt=0)
    cache_dir: Path = PROJECT_ROOT / "var" / "monitoring" / "reference"
    # A signal (text length, language, intent mix, confidence) drifts when its test's p-value
    # is below this; the embeddings when their squared maximum mean discrepancy (Evidently's
    # MMD method) passes this. See services/drift/stats.py.
    column_p_value: float = Field(default=0.01, gt=0, lt=1)
    embedding_mmd: float = Field(default=0.015, gt=0)
    # A run is flagged drifted at either warning level; deploy/prometheus/alerts.yml holds the
    # same numbers, and the critical ones.
    warning_share: float = Field(default=0.4, gt=0, le=1)
    warning_prediction_score: float = Field(default=0.2, gt=0, le=1)

    @model_validator(mode="after")
    def _sample_fits_window(self) -> "DriftSettings":
        if self.min_sample > self.window:
            raise ValueError("min_sample must not exceed window")
        return self
