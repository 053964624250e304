from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.services.security import SCOPES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class TenantPublic(BaseModel):
    id: int
    name: str
    created_at: datetime


class TenantCreated(TenantPublic):
    webhook_secret: str = Field(
        description="Signs /v1/intake/webhook bodies (HMAC-SHA256); shown here only"
    )


class KeyCreate(Strict):
    tenant_id: int
    scopes: list[str] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _known(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; use {list(SCOPES)}")
        return sorted(set(scopes))


class KeyCreated(BaseModel):
    id: int
    tenant_id: int
    scopes: list[str]
    key: str = Field(description="Shown once; only its digest is stored.")
