import contextlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelStatus(BaseModel):
    name: str
    version: str
    state: str = Field(description="READY, UNAVAILABLE, LOADING, UNLOADING ...")
    reason: str


class ModelStatusList(BaseModel):
    models: list[ModelStatus]


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1, description="Serve only this version")
    config: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Fields merged onto the repository's config.pbtxt (protobuf JSON names). Allowed: "
            "version_policy; dynamic_batching (max_queue_delay_microseconds, "
            "preferred_batch_size, preserve_ordering, priority_levels, default_priority_level, "
            "default_queue_policy); instance_group (count 1-8, kind unchanged). Any other "
            "field is refused with 422 naming it."
        ),
    )


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    unload_dependents: bool = False


class MemoryChange(BaseModel):
    scope: str = Field(
        description="triton_processes: RSS of tritonserver and its children (Triton on this "
        "host); host: memory in use on the orchestrator's host (Triton elsewhere)"
    )
    before_bytes: int
    after_bytes: int
    delta_bytes: int
    freed_bytes: int = Field(description="before - after, 0 when memory grew")


class ModelReport(BaseModel):
    """What one model went through; process figures are null when Triton runs elsewhere."""

    model: str
    state_before: str
    state_after: str
    processes_before: int | None = Field(description="Its triton_python_backend_stub processes")
    processes_after: int | None
    memory_before_bytes: int | None = Field(description="RSS of those processes")
    memory_after_bytes: int | None
    freed_bytes: int | None


class ReplicaAction(BaseModel):
    """How a load or unload went on one more Triton replica (TRITON_REPLICAS)."""

    replica: str = Field(description="The replica's gRPC address")
    result: str = Field(description="ok or error")
    detail: str | None = None


class ControlResult(BaseModel):
    model: str
    action: str
    result: str = Field(description="ok; a timeout answers 503 and is audited as timeout")
    models: list[ModelStatus] = Field(description="The model's versions after the action")
    memory: MemoryChange
    report: list[ModelReport] = Field(description="Each model the action touched")
    replicas: list[ReplicaAction] | None = Field(
        default=None,
        description="With several Tritons: the same action on each other replica, after this "
        "one (whose report is above)",
    )


class AuditRecord(BaseModel):
    id: int
    key_id: int | None = Field(description="The key that acted; null: the orchestrator itself")
    action: str
    target: str
    request: dict[str, Any]
    result: str = Field(description="ok, error or timeout")
    detail: str | None
    report: dict[str, Any] | None = Field(
        default=None, description="For load and unload: the memory and per-model report"
    )
    created_at: datetime

    @model_validator(mode="after")
    def _report_from_detail(self) -> "AuditRecord":
        # The report is stored as JSON in `detail` (no schema change); shown parsed here.
        if self.report is None and self.detail and self.detail.startswith("{"):
            with contextlib.suppress(ValueError):
                self.report = json.loads(self.detail)
        return self


class AuditPage(BaseModel):
    data: list[AuditRecord]
    next_cursor: str | None


class VersionRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1, description="Triton's version folder number")
    note: str | None = Field(default=None, max_length=500)


class CanaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1, description="A candidate, or the canary to change its share")
    percent: int = Field(ge=1, le=99, description="Share of production traffic it answers")


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)


class ModelVersionPublic(BaseModel):
    version: int
    state: str = Field(description="candidate, canary, production, archived or rolled_back")
    canary_percent: int | None = Field(description="While canary: its share of production")
    note: str | None
    created_at: datetime | None = Field(description="null: the implicit version 1, not stored")
    updated_at: datetime | None


class ReplicaServing(BaseModel):
    """What one Triton replica serves after a version was loaded on it."""

    replica: str = Field(description="The replica's gRPC address")
    model: str = Field(description="The ensemble serving the version, e.g. ticket_triage_v2")
    ready: bool


class ModelVersionList(BaseModel):
    model: str
    data: list[ModelVersionPublic] = Field(description="Newest version first")
    replicas: list[ReplicaServing] | None = Field(
        default=None,
        description="Registering or starting a canary of a triage version: each Triton "
        "replica, loaded with it",
    )


class RetrainRequest(BaseModel):
    """The retraining recipe (omitted: the command's defaults). Triage: `export retrain`, 2
    epochs on every text. The x-ray: `export xray-retrain`, 10 epochs on PneumoniaMNIST's
    training split plus clinicians' confirmations; `train_per_label` and `test_limit` are
    triage's only. Credit scoring: `export credit-retrain`, `make up`'s tree size on the
    Taiwan training split plus lenders' outcomes; it takes none of these options."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["ticket_triage", "xray_diagnosis", "credit_scoring"] = "ticket_triage"
    epochs: int | None = Field(default=None, ge=1, le=60)
    train_per_label: int | None = Field(default=None, ge=1, le=100_000)
    test_limit: int | None = Field(default=None, ge=77, le=100_000)
    publish: bool = Field(
        default=False,
        description="Publish a candidate that passes (`export publish`, `export xray-publish`, "
        "`export credit-publish`)",
    )

    @model_validator(mode="after")
    def _per_model(self) -> "RetrainRequest":
        if self.model == "ticket_triage" and self.epochs is not None and self.epochs > 20:
            raise ValueError("epochs: at most 20 for ticket_triage")
        triage_only = {"xray_diagnosis": ("train_per_label", "test_limit")}
        triage_only["credit_scoring"] = ("epochs", *triage_only["xray_diagnosis"])
        for name in triage_only.get(self.model, ()):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} is not a {self.model} option")
        return self


class RetrainRunPublic(BaseModel):
    id: int
    status: str = Field(description="queued, running, passed, refused or failed")
    options: dict[str, Any]
    step: int = Field(description="The step retrain is at, of `steps` (0: not begun)")
    steps: int
    message: str | None
    log_tail: str | None = Field(description="The last lines the commands printed")
    report: dict[str, Any] | None = Field(
        description="The model card (passed) or the refusal report with the gate's reasons"
    )
    report_path: str | None
    published: int | None = Field(
        description="The version published (of the run's model, in `options`): register it "
        "next (POST /v1/model/versions)"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RetrainRunList(BaseModel):
    data: list[RetrainRunPublic] = Field(description="Newest first")
