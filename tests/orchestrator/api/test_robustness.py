"""Every route, fed garbage bodies, paths and ids, answers 2xx or 4xx: never a 5xx."""

import pytest

from loadtest.bench.servers import UNLIMITED_RATE
from tests.utils.orchestrator import Orchestrator, new_key

GARBAGE_BODIES = (None, b"", b"{}", b"[]", b"null", b'{"model": 5}', b"\xff\xfe", b'"text"')
IDS = ("0", "-1", "x", "99999", "1e9")  # none exists, so nothing is revoked or changed


@pytest.fixture(scope="module")
def unlimited_api(database_url, triton_settings, triton):
    """Rate limits out of the way, so that every request reaches its handler."""
    orchestrator = Orchestrator(database_url, triton_settings, **UNLIMITED_RATE).start()
    yield orchestrator.client
    orchestrator.close()


def _paths(template: str) -> set[str]:
    paths = set()
    for value in IDS:
        path = template
        for name in ("{ticket_id}", "{key_id}", "{tenant_id}", "{report_id}"):
            path = path.replace(name, value)
        paths.add(path.replace("{name}", value))  # a configuration's name: unknown, a 404
        paths.add(path.replace("{name}", "chat"))
    return paths


def test_no_request_makes_the_server_answer_500(unlimited_api):
    api = unlimited_api
    key = new_key(api, ["tickets:write", "tickets:read", "chat", "admin"], "fuzz tenant")
    spec = api.get("/openapi.json").json()
    checked = 0
    for template, operations in spec["paths"].items():
        for method in operations:
            for path in _paths(template):
                for raw in GARBAGE_BODIES:
                    for content_type in ("application/json", "message/rfc822"):
                        headers = {"X-API-Key": key, "Content-Type": content_type}
                        answer = api.request(method.upper(), path, content=raw, headers=headers)
                        assert answer.status_code < 500, (method, path, raw, answer.text)
                        checked += 1
    assert checked > 500
