"""GET /v1/me: what the calling key is (its tenant, scopes and environment)."""

from typing import Annotated

from fastapi import APIRouter, Depends

from orchestrator.api.deps import limited_key
from orchestrator.api.keycache import Caller
from orchestrator.schemas.admin import KeySelf

router = APIRouter(prefix="/v1", tags=["auth"])


@router.get("/me", response_model=KeySelf)
def me(key: Annotated[Caller, Depends(limited_key)]) -> KeySelf:
    """Any valid key may ask; the environment decides which configuration its requests meet."""
    return KeySelf(
        id=key.id,
        tenant_id=key.tenant_id,
        scopes=sorted(key.scope_set),
        environment=key.environment,
    )
