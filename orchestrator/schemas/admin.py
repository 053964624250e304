from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.environments import DEFAULT_ENVIRONMENT, Environment
from orchestrator.schemas.common import IdField
from orchestrator.services.keys import is_reserved
from orchestrator.services.security import SCOPES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(Strict):
    name: str = Field(min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if is_reserved(name):
            raise ValueError(f"{name!r} is reserved for the platform tenant")
        return name


class TenantPublic(BaseModel):
    id: int
    name: str
    created_at: datetime


class TenantCreated(TenantPublic):
    webhook_secret: str = Field(
        description="Signs /v1/intake/webhook bodies (HMAC-SHA256); shown here only"
    )


class KeyCreate(Strict):
    tenant_id: IdField | None = Field(
        default=None, description="Default: the calling key's tenant. Tenant admins: only theirs"
    )
    scopes: list[str] = Field(min_length=1)
    environment: Environment = Field(
        default=DEFAULT_ENVIRONMENT,
        description="Which configuration the key's requests and tickets meet",
    )

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
    environment: Environment
    key: str = Field(description="Shown once; only its digest is stored.")


class KeyPublic(BaseModel):
    id: int
    tenant_id: int
    scopes: list[str]
    origin: str = Field(description="bootstrap (ORCHESTRATOR_ADMIN_KEY), api or cli")
    environment: Environment
    created_at: datetime
    revoked_at: datetime | None


class KeyPage(BaseModel):
    data: list[KeyPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class KeySelf(BaseModel):
    """The calling key, as GET /v1/me shows it (never the key itself)."""

    id: int
    tenant_id: int
    scopes: list[str]
    environment: Environment
