"""API keys: generated once, stored as a digest, compared in constant time."""

import hashlib
import secrets

SCOPES = ("tickets:write", "tickets:read", "chat", "admin")
KEY_PREFIX = "sk-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mask(key: str) -> str:
    """What logs may show of a key."""
    return key[:6] + "…" if key else ""
