"""Signed CRM webhook deliveries, as the intake tests send them."""

import json
import time

import httpx

from orchestrator.services.webhooks import sign


def webhook_event(**changes) -> bytes:
    """A fresh event body (new event id, current timestamp); `changes` override its fields."""
    event = {
        "event_id": f"evt-{time.time_ns()}",
        "timestamp": int(time.time()),
        "subject": "Refund missing",
        "body": "I returned an item but the refund is not showing up.",
        "customer_email": "carla@example.com",
        "metadata": {"crm": "test"},
    }
    return json.dumps({**event, **changes}).encode()


def send_webhook(
    client: httpx.Client, tenant: dict, body: bytes, *, signature=None, tenant_id=None
) -> httpx.Response:
    """POST `body` signed with the tenant's secret, unless `signature` is given."""
    headers = {
        "X-Tenant-Id": str(tenant_id if tenant_id is not None else tenant["id"]),
        "Content-Type": "application/json",
        "X-Signature": signature if signature is not None else sign(tenant["secret"], body),
    }
    return client.post("/v1/intake/webhook", content=body, headers=headers)
