"""API keys: generated once, stored as a digest, compared in constant time.

Scopes:
- `tickets:write`, `tickets:read`, `chat`: the tenant's own data and the models.
- `diagnoses:write`, `diagnoses:read`: send chest x-rays and confirm or delete their
  diagnoses; read them and their heatmaps.
- `credit:score`, `credit:read`: score credit applicants; read the stored scorings and the
  tenant's decision policy (a tenant admin sets it).
- `admin`: a tenant admin; manages its own tenant's keys and webhook secret, reads its own
  tenant's audit entries.
- `platform`: a platform admin; creates tenants, manages every tenant's keys, controls the
  models and reads the whole audit log. Only keys of the platform tenant (the one the
  bootstrap key `ORCHESTRATOR_ADMIN_KEY` belongs to) can hold it.
"""

import hashlib
import secrets

SCOPES = (
    "tickets:write",
    "tickets:read",
    "chat",
    "diagnoses:write",
    "diagnoses:read",
    "credit:score",
    "credit:read",
    "admin",
    "platform",
)
PLATFORM_SCOPE = "platform"
KEY_PREFIX = "sk-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mask(key: str) -> str:
    """What logs may show of a key."""
    return key[:6] + "…" if key else ""
