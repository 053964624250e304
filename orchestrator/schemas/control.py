from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
        default=None, description="A complete model config (JSON) that replaces config.pbtxt"
    )


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    unload_dependents: bool = False


class MemoryChange(BaseModel):
    before_bytes: int
    after_bytes: int
    delta_bytes: int


class ControlResult(BaseModel):
    model: str
    action: str
    result: str
    models: list[ModelStatus] = Field(description="The model's versions after the action")
    memory: MemoryChange = Field(description="Host memory in use before and after")


class AuditRecord(BaseModel):
    id: int
    key_id: int
    action: str
    target: str
    request: dict[str, Any]
    result: str
    detail: str | None
    created_at: datetime


class AuditPage(BaseModel):
    data: list[AuditRecord]
    next_cursor: str | None
