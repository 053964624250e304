"""Hostile input against the real stack: each gets its documented 4xx in the one error shape.

Ids past BIGINT, cursors that name no row, deep metadata, deeply nested JSON, bodies over the
limit (chunked or declared), huge headers and bodies that are not UTF-8. The routes come from
/openapi.json, so a new route is covered the day it is added.
"""

import base64
import json
import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from contracts.xray import MAX_IMAGE_BYTES
from loadtest.bench.servers import UNLIMITED_RATE
from orchestrator.app import MULTIPART_SLACK_BYTES
from orchestrator.db.models import Ticket
from tests.utils.orchestrator import ADMIN_KEY, Orchestrator, error_of, new_key

BIG_IDS = (str(2**31), str(2**63), str(2**64), "9" * 40)  # 2**31: past INTEGER on PostgreSQL
# Ids outside the path: the key-create body and the webhook's tenant header.
ID_ELSEWHERE = {
    "POST /v1/admin/keys": ("tenant_id", {"scopes": ["chat"]}, "tenant_id", "body"),
    "POST /v1/intake/webhook": ("X-Tenant-Id", {}, "X-Tenant-Id", "header"),
}
DEEP = 3_000
TICKET = {"subject": "Card stolen", "body": "My card was stolen on the train this morning."}


@pytest.fixture(scope="module")
def stack(database_url, triton_settings, triton):
    """The real orchestrator, rate limits out of the way so every request reaches its route."""
    orchestrator = Orchestrator(database_url, triton_settings, **UNLIMITED_RATE).start()
    orchestrator.database_url = database_url
    yield orchestrator
    orchestrator.close()


@pytest.fixture(scope="module")
def api(stack) -> httpx.Client:
    return stack.client


@pytest.fixture(scope="module")
def headers(api) -> dict:
    scopes = ["tickets:write", "tickets:read", "chat", "diagnoses:write", "diagnoses:read",
              "credit:score", "credit:read", "admin"]  # fmt: skip
    return {"X-API-Key": new_key(api, scopes, "hostile tenant")}


@pytest.fixture(scope="module")
def operations(api) -> list[tuple[str, str, dict]]:
    spec = api.get("/openapi.json").json()
    return [
        (method, path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]


def _fill(template: str, value: str = "1") -> str:
    for name in ("{ticket_id}", "{key_id}", "{tenant_id}", "{report_id}", "{diagnosis_id}",
                 "{score_id}"):  # fmt: skip
        template = template.replace(name, value)
    template = template.replace("{name}", "chat")  # a configuration's name, not an id
    assert "{" not in template, f"a new path parameter in {template}: add it here"
    return template


def _refused(response: httpx.Response, status: int, **error) -> dict:
    """`response` is `status` in the one error shape, with the given error fields."""
    assert response.status_code == status, (response.request.url, response.text)
    found = error_of(response)
    for field, value in error.items():
        assert found[field] == value, (response.request.url, found)
    return found


PLATFORM_ONLY = ("/v1/monitoring/", "/v1/model/retrain/")


def test_ids_past_bigint_in_any_path_get_422_naming_the_parameter(api, headers, operations):
    failures, checked = set(), 0
    for method, template, operation in operations:
        names = [
            p["name"]
            for p in operation.get("parameters", [])
            if p["in"] == "path" and p["schema"].get("type") == "integer"
        ]
        for name in names:
            # Platform-only routes refuse a tenant's key before they read the id.
            platform = template.startswith(PLATFORM_ONLY)
            sent = {"X-API-Key": ADMIN_KEY} if platform else headers
            for big in BIG_IDS:
                path = _fill(template.replace("{" + name + "}", big))
                response = api.request(method.upper(), path, headers=sent, json={})
                checked += 1
                if response.status_code != 422 or error_of(response)["param"] != name:
                    failures.add((method, path, response.status_code, response.text[:200]))
    assert not failures, failures
    assert checked >= 3 * len(BIG_IDS)  # GET, PATCH and POST .../draft at least


@pytest.mark.parametrize("route", sorted(ID_ELSEWHERE))
@pytest.mark.parametrize("big", BIG_IDS)
def test_ids_past_the_key_range_in_bodies_and_headers_get_422(api, route, big):
    param, body, name, where = ID_ELSEWHERE[route]
    method, path = route.split(" ")
    sent = {"X-API-Key": ADMIN_KEY}
    if where == "header":
        sent[name] = big
    else:
        body = {**body, name: int(big)}
    response = api.request(method, path, json=body, headers=sent)
    assert response.status_code == 422 and error_of(response)["param"] == param, response.text


def test_huge_numbers_in_metadata_are_kept_and_read_back(api, headers):
    metadata = {"crm_id": 2**63, "big": 2**70, "negative": -(2**65)}
    created = api.post("/v1/tickets", json={**TICKET, "metadata": metadata}, headers=headers)
    assert created.status_code == 202, created.text
    stored = api.get(f"/v1/tickets/{created.json()['id']}", headers=headers)
    assert stored.status_code == 200 and stored.json()["metadata"] == metadata


@pytest.mark.parametrize("route", ["/v1/tickets", "/v1/feedback", "/v1/chat/history"])
def test_cursors_that_this_api_did_not_give_out_get_422_naming_cursor(api, headers, route):
    def cursor(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    for bad in (
        cursor(f"t:{2**63}"),
        cursor(f"t:{2**64}"),
        cursor("t:" + "9" * 5000),
        cursor("t:0"),
        cursor("t:-5"),
        cursor("t:1e3"),
        cursor("x:5"),
        "!!!!",
        "A" * 10_000,
        "%ff%fe",
    ):
        _refused(api.get(route, params={"cursor": bad}, headers=headers), 422, param="cursor")


def _nested(depth: int) -> dict:
    value: object = "leaf"
    for _ in range(depth - 1):
        value = {"a": value}
    return {"a": value}


def test_metadata_over_its_limits_gets_422_naming_metadata(api, headers):
    ok = api.post("/v1/tickets", json={**TICKET, "metadata": _nested(8)}, headers=headers)
    assert ok.status_code == 202, ok.text
    stored = api.get(f"/v1/tickets/{ok.json()['id']}", headers=headers).json()
    assert stored["metadata"] == _nested(8)
    for metadata in (
        _nested(9),
        _nested(60),
        {f"k{i}": i for i in range(300)},
        {"blob": "x" * 20_000},
        {"list": [[[[[[[[[1]]]]]]]]]},
    ):
        response = api.post("/v1/tickets", json={**TICKET, "metadata": metadata}, headers=headers)
        _refused(response, 422, param="metadata")
    # Deeper than any body may be (64 levels): refused before parsing, in the same shape.
    response = api.post("/v1/tickets", json={**TICKET, "metadata": _nested(300)}, headers=headers)
    _refused(response, 422, code="json_too_deep")
    assert api.get("/v1/tickets", headers=headers).status_code == 200


def test_a_ticket_stored_with_metadata_too_deep_to_serialise_stays_readable(stack, headers):
    """Rows stored before the limits: the ticket and every page listing it answer 200."""
    api = stack.client
    ticket_id = api.post("/v1/tickets", json=TICKET, headers=headers).json()["id"]
    engine = create_engine(stack.database_url)
    try:
        with Session(engine) as session:
            session.get(Ticket, ticket_id).extra = _nested(300)
            session.commit()
    finally:
        engine.dispose()
    one = api.get(f"/v1/tickets/{ticket_id}", headers=headers)
    assert one.status_code == 200, one.text
    assert one.json()["metadata"] == {}
    page = api.get("/v1/tickets", params={"limit": 200}, headers=headers)
    assert page.status_code == 200, page.text
    assert ticket_id in [t["id"] for t in page.json()["data"]]


def test_deeply_nested_json_gets_422_on_every_route_that_takes_a_body(api, headers, operations):
    deep_object = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    bodies = (
        b"[" * DEEP + b"]" * DEEP,
        deep_object,
        b'{"subject": "s", "body": "b", "metadata": ' + deep_object + b"}",
    )
    checked = 0
    for method, template, operation in operations:
        if "requestBody" not in operation:
            continue
        path = _fill(template)
        for raw in bodies:
            for content_type in ("application/json", None):
                sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
                response = api.request(method.upper(), path, content=raw, headers=sent)
                _refused(response, 422, code="json_too_deep")
                checked += 1
    assert checked >= 8 * 6


def _chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def _body_limit(path: str) -> int:
    """The default body limit, or the image routes' own (orchestrator/app.py)."""
    if path.startswith("/v1/diagnoses"):
        return MAX_IMAGE_BYTES + MULTIPART_SLACK_BYTES
    return 1 << 20


def test_bodies_over_the_limit_get_413_chunked_or_declared_on_every_route(api, headers, operations):
    checked = 0
    for method, template, operation in operations:
        if "requestBody" not in operation:
            continue
        path = _fill(template)
        over = _body_limit(path) + 1
        for content_type in ("application/json", "message/rfc822"):
            sent = {**headers, "Content-Type": content_type}
            chunked = api.request(method.upper(), path, content=_chunks(over), headers=sent)
            assert "content-length" not in chunked.request.headers
            _refused(chunked, 413, code="body_too_large")
            declared = api.request(method.upper(), path, content=b"x" * over, headers=sent)
            _refused(declared, 413, code="body_too_large")
            checked += 1
    assert checked >= 8


def test_chunked_bodies_within_the_limit_still_work(api, headers):
    raw = json.dumps(TICKET).encode()
    response = api.post(
        "/v1/tickets",
        content=(raw[i : i + 7] for i in range(0, len(raw), 7)),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text


def test_huge_headers_are_refused_with_a_4xx_and_others_are_served_meanwhile(stack, headers):
    api = stack.client
    _refused(api.get("/healthz", headers={"X-Padding": "x" * 20_000}), 431)
    _refused(api.get("/v1/tickets", headers={**headers, "X-Pad": "y" * 20_000}), 431)
    answers: list[int | str] = []

    def huge_header() -> None:
        """1 MB of header, sent raw: the server must answer or drop it, never wait for more."""
        try:
            with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * (1 << 20))
                conn.sendall(b"\r\n\r\n")
                answers.append(conn.recv(65536).split(b"\r\n", 1)[0].decode())
        except ConnectionError as error:  # refused mid-header (uvicorn's h11 does so at 16 KB)
            answers.append(f"closed: {error}")

    threads = [threading.Thread(target=huge_header) for _ in range(4)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    for _ in range(20):
        assert api.get("/healthz", timeout=5).status_code == 200
    assert time.monotonic() - started < 10
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    for answer in answers:
        status = answer.split(" ")[1] if answer.startswith("HTTP/") else answer
        assert answer.startswith("closed") or status.startswith("4"), answer


def test_json_bodies_that_are_not_utf8_get_422_and_raw_ones_no_5xx(api, headers, operations):
    for method, template, operation in operations:
        if "requestBody" not in operation:
            continue
        for raw in (b'{"subject": "\xff\xfe", "body": "b"}', b"\xff\xfe\xfd"):
            sent = {**headers, "Content-Type": "application/json"}
            response = api.request(method.upper(), _fill(template), content=raw, headers=sent)
            _refused(response, 422, code="invalid_json")
        email = b"Subject: \xff\r\nFrom: a@b.example\r\n\r\n\xfe body"
        sent = {**headers, "Content-Type": "message/rfc822"}
        response = api.request(method.upper(), _fill(template), content=email, headers=sent)
        assert response.status_code < 500, (method, template, response.text)
        if response.status_code >= 400:
            error_of(response)


def test_triage_texts_over_the_byte_limit_get_422(api, headers):
    from contracts.models import MAX_TEXT_BYTES

    euro = "€" * (MAX_TEXT_BYTES // 3 + 1)  # fewer characters than the limit, more bytes
    response = api.post("/v1/triage", json={"texts": [euro]}, headers=headers)
    found = _refused(response, 422, param="texts.0")
    assert str(MAX_TEXT_BYTES) in found["message"]


# The pieces above, alone: fast, no stack.


def test_json_depth_counts_brackets_outside_strings_only():
    from orchestrator.api.middleware import json_too_deep

    assert not json_too_deep(b"[" * 64 + b"]" * 64, 64)
    assert json_too_deep(b"[" * 65 + b"]" * 65, 64)
    assert json_too_deep(b"[" * 65, 64)  # unbalanced still counts
    assert not json_too_deep(json.dumps({"text": "[{" * 5000}).encode(), 64)
    assert not json_too_deep(json.dumps({"t": '\\"[[[' * 100}).encode(), 64)
    assert not json_too_deep(b"[" * 30 + b"]" * 30 + b"[" * 30 + b"]" * 30, 64)


def test_triage_reads_the_first_bytes_of_a_long_ticket_cut_at_a_character():
    from contracts.models import MAX_TEXT_BYTES
    from orchestrator.services.triage import triage_input

    assert triage_input("short") == "short"
    long = "€" * MAX_TEXT_BYTES  # 3 bytes each
    cut = triage_input(long)
    assert len(cut.encode()) <= MAX_TEXT_BYTES and long.startswith(cut)
    assert len(cut.encode()) > MAX_TEXT_BYTES - 3


def test_the_triage_schema_limit_is_the_contracts_in_bytes():
    from pydantic import ValidationError

    from contracts.models import MAX_TEXT_BYTES
    from orchestrator.schemas.triage import TriageRequest

    TriageRequest(texts=["x" * MAX_TEXT_BYTES])
    with pytest.raises(ValidationError):
        TriageRequest(texts=["é" * (MAX_TEXT_BYTES // 2 + 1)])


def test_readyz_checks_the_database_off_the_event_loop_within_its_timeout(tmp_path):
    """A database that takes 1 s to answer: /readyz says "not ready" after its 0.3 s timeout,
    and the event loop keeps running meanwhile (it stalled for the whole second before)."""
    import asyncio
    from types import SimpleNamespace

    from sqlalchemy import event
    from sqlalchemy.orm import sessionmaker

    from orchestrator.api.routes.health import readyz

    engine = create_engine(f"sqlite:///{tmp_path / 'slow.db'}")
    event.listen(engine, "before_cursor_execute", lambda *_: time.sleep(1.0))

    async def triage_ready() -> bool:
        return True

    state = SimpleNamespace(
        settings=SimpleNamespace(ready_timeout_s=0.3),
        sessions=sessionmaker(engine),
        triage=SimpleNamespace(ready=triage_ready),
    )
    request = SimpleNamespace(app=SimpleNamespace(state=state))

    async def main() -> tuple[float, float, int]:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        response = await readyz(request)
        took = time.perf_counter() - started
        tick.cancel()
        return took, max(gaps), response.status_code

    try:
        took, longest_gap, status = asyncio.run(main())
    finally:
        engine.dispose()
    assert status == 503
    assert took < 0.8, took
    assert longest_gap < 0.5, longest_gap
