"""Intake against a real orchestrator (uvicorn, no Triton needed): hostile e-mail is refused
without stalling the server, real customer mail is never bounced, and a webhook delivery that
failed can be delivered again."""

import threading
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from orchestrator.db.models import WebhookDelivery, utcnow
from orchestrator.settings import TritonSettings
from tests.utils import mail
from tests.utils.orchestrator import Orchestrator, error_of, new_key, new_tenant
from tests.utils.ports import free_ports
from tests.utils.webhooks import send_webhook, webhook_event

WORST = "280 KB of encoded words in Subject"  # 10.8 s of parsing on the event loop before
NO_LIMITS = {  # every cap out of the way, so that only the parse-time cap stops a message
    "ORCHESTRATOR_EMAIL_MAX_DEPTH": "100000",
    "ORCHESTRATOR_EMAIL_MAX_PARTS": "100000",
    "ORCHESTRATOR_EMAIL_MAX_HEADER_BYTES": "100000000",
    "ORCHESTRATOR_EMAIL_MAX_ENCODED_WORDS": "100000000",
    "ORCHESTRATOR_EMAIL_PARSE_TIMEOUT_S": "2",
}


def _start(database_url: str, **env: str) -> Orchestrator:
    """An orchestrator without a worker: intake only stores tickets, so no Triton is needed."""
    http, grpc, metrics = free_ports(3)
    triton = TritonSettings(http_port=http, grpc_port=grpc, metrics_port=metrics)
    return Orchestrator(
        database_url,
        triton,
        ORCHESTRATOR_WORKER_IN_PROCESS="false",
        ORCHESTRATOR_RATE_LIMIT_PER_MINUTE="60000",
        ORCHESTRATOR_RATE_LIMIT_BURST="1000",
        **env,
    ).start()


@pytest.fixture(scope="module")
def server(database_url):
    orchestrator = _start(database_url)
    yield orchestrator
    orchestrator.close()


@pytest.fixture(scope="module")
def tenant(server):
    created = new_tenant(server.client, "hardening tenant")
    key = new_key(server.client, ["tickets:write", "tickets:read"], created["id"])
    return {"id": created["id"], "secret": created["webhook_secret"], "key": {"X-API-Key": key}}


def _send_mail(client: httpx.Client, tenant: dict, raw: bytes) -> httpx.Response:
    headers = {**tenant["key"], "Content-Type": "message/rfc822"}
    return client.post("/v1/intake/email", content=raw, headers=headers, timeout=60)


def _healthz_while(client: httpx.Client, send, min_s: float = 1.5) -> tuple[float, list]:
    """The slowest /healthz answer seen while `send` runs (repeated for at least `min_s`)."""
    answers: list = []

    def sender():
        deadline = time.monotonic() + min_s
        while True:
            answers.append(send())
            if time.monotonic() > deadline:
                return

    thread = threading.Thread(target=sender)
    thread.start()
    slowest = 0.0
    with httpx.Client(base_url=client.base_url, timeout=30) as probe:
        while thread.is_alive():
            started = time.perf_counter()
            assert probe.get("/healthz").status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.05)
    thread.join()
    return slowest, answers


# 1. Hostile e-mail: a 4xx in the one error shape, and the server keeps answering.


@pytest.mark.parametrize("name", sorted(mail.HOSTILE))
def test_hostile_mail_gets_a_4xx_naming_the_problem(server, tenant, name):
    response = _send_mail(server.client, tenant, mail.HOSTILE[name]())
    assert response.status_code == 422, (name, response.status_code, response.text[:300])
    error = error_of(response)
    assert error["code"] == "email_too_complex" and error["param"] == "body"


def test_healthz_answers_while_the_worst_mail_is_refused(server, tenant):
    raw = mail.HOSTILE[WORST]()
    slowest, answers = _healthz_while(server.client, lambda: _send_mail(server.client, tenant, raw))
    assert {answer.status_code for answer in answers} == {422}
    assert slowest < 0.2, f"/healthz took {slowest:.3f} s while the mail was processed"


def test_a_parse_over_the_time_cap_is_killed_while_healthz_answers(database_url):
    """With every cap lifted, the worst mail really is parsed, in another process, for 2 s."""
    relaxed = _start(database_url, **NO_LIMITS)
    try:
        key = {"X-API-Key": new_key(relaxed.client, ["tickets:write"], "relaxed tenant")}
        tenant = {"key": key}
        started = time.monotonic()
        # 600 KB: parsing grows faster than the size, so this outlasts the 2 s cap on a fast
        # machine too (280 KB parsed within 2 s on a 2026-11 Xeon, and the test failed)
        raw = mail.encoded_subject(600_000)
        slowest, answers = _healthz_while(
            relaxed.client, lambda: _send_mail(relaxed.client, tenant, raw), 0
        )
        assert slowest < 0.2, f"/healthz took {slowest:.3f} s while the mail was parsed"
        assert time.monotonic() - started < 8, "the 2 s cap did not stop the parse"
        (answer,) = answers
        assert answer.status_code == 422 and error_of(answer)["code"] == "email_too_complex"
        assert "longer than the 2 s limit" in error_of(answer)["message"]
        for raw in (mail.nested_mime(1100, lines=100), mail.nested_comments()):
            refused = _send_mail(relaxed.client, tenant, raw)  # RecursionError in the parser
            assert refused.status_code == 422 and error_of(refused)["code"] == "email_too_complex"
        fine = _send_mail(relaxed.client, tenant, mail.subject_only())  # a fresh worker serves
        assert fine.status_code == 202, fine.text
    finally:
        relaxed.close()


# 2. Real customer mail becomes a ticket.


def _with_sender(raw: bytes) -> bytes:
    """The message as is when it names a sender address; otherwise with a From line added."""
    from email import message_from_bytes
    from email.utils import getaddresses

    addresses = getaddresses(message_from_bytes(raw).get_all("from", []))
    if any("@" in address and "." in address.split("@")[-1] for _, address in addresses):
        return raw
    head, newline, rest = raw.partition(b"\n")
    added = b"From: corpus@example.com\n"
    return head + newline + added + rest if head.startswith(b"From ") else added + raw


def test_every_message_of_cpythons_email_corpus_becomes_a_ticket(server, tenant):
    folder = mail.corpus_folder()
    if folder is None:
        print("SKIPPED: CPython's Lib/test/test_email/data is not installed on this machine")
        pytest.skip("CPython's e-mail test corpus (test/test_email/data) is not installed")
    files = sorted(folder.glob("msg_*.txt"))
    refused = {}
    for path in files:
        response = _send_mail(server.client, tenant, _with_sender(path.read_bytes()))
        if response.status_code not in (200, 202):
            refused[path.name] = (response.status_code, response.text[:200])
    assert len(files) >= 40 and refused == {}, refused


@pytest.mark.parametrize(
    ("raw", "subject", "body", "attachments"),
    [
        (mail.subject_only(), "Please call me back about my card",
         "Please call me back about my card", []),
        (mail.attachment_only(), "Statement attached", "Statement attached",
         [{"filename": "statement.pdf", "content_type": "application/pdf", "size": 230}]),
        (mail.nested_multipart(), "Card declined", "My card was declined at the shop today.",
         [{"filename": "receipt.png", "content_type": "image/png", "size": 108}]),
    ],
    ids=["subject-only", "attachment-only", "nested-multipart"],
)  # fmt: skip
def test_odd_customer_mail_becomes_a_ticket_with_its_attachments(
    server, tenant, database_url, raw, subject, body, attachments
):
    response = _send_mail(server.client, tenant, raw)
    assert response.status_code == 202, response.text
    ticket_id = response.json()["id"]
    ticket = server.client.get(f"/v1/tickets/{ticket_id}", headers=tenant["key"]).json()
    assert (ticket["subject"], ticket["body"]) == (subject, body)
    assert ticket["attachments"] == attachments
    listed = server.client.get("/v1/tickets", headers=tenant["key"]).json()["data"]
    assert all("raw_message" not in item for item in listed)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        kept = connection.scalar(
            text("SELECT raw_message FROM tickets WHERE id = :id"), {"id": ticket_id}
        )
    engine.dispose()
    assert bytes(kept) == raw


def test_nul_characters_in_a_mail_do_not_break_storing_it(server, tenant):
    raw = (
        b"From: nul@example.com\nSubject: =?utf-8?q?a=00b?=\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        b"one\x00two\n"
    )
    response = _send_mail(server.client, tenant, raw)
    assert response.status_code == 202, response.text
    ticket = server.client.get(f"/v1/tickets/{response.json()['id']}", headers=tenant["key"])
    assert (ticket.json()["subject"], ticket.json()["body"]) == ("ab", "onetwo")


def test_mail_without_a_sender_is_refused_naming_the_problem(server, tenant):
    response = _send_mail(server.client, tenant, b"Subject: who?\n\nno sender here\n")
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "malformed_email" and "sender" in error["message"]


# 3. Webhooks: a failed delivery leaves no trace; replays; pruning; hostile input.


REFUSE_TICKETS = {
    "sqlite": [
        "CREATE TRIGGER refuse_tickets BEFORE INSERT ON tickets "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_tickets() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$",
        "CREATE TRIGGER refuse_tickets BEFORE INSERT ON tickets "
        "FOR EACH ROW EXECUTE FUNCTION refuse_tickets()",
    ],
}
ALLOW_TICKETS = {
    "sqlite": ["DROP TRIGGER refuse_tickets"],
    "postgresql": ["DROP TRIGGER refuse_tickets ON tickets", "DROP FUNCTION refuse_tickets()"],
}


def _execute(database_url: str, statements: list[str]) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def test_a_delivery_that_failed_can_be_delivered_again_and_then_succeeds(
    server, tenant, database_url
):
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    body = webhook_event(external_id="crm-retry-1")
    _execute(database_url, REFUSE_TICKETS[dialect])  # the database refuses to store tickets
    try:
        failed = send_webhook(server.client, tenant, body)
    finally:
        _execute(database_url, ALLOW_TICKETS[dialect])
    assert failed.status_code == 503 and failed.headers["Retry-After"], failed.text
    again = send_webhook(server.client, tenant, body)  # the CRM retries the very same delivery
    assert again.status_code == 202, again.text
    replay = send_webhook(server.client, tenant, body)  # a replay of a success: the same ticket
    assert replay.status_code == 200 and replay.json() == {
        "id": again.json()["id"],
        "status": "queued",
    }


def test_remembered_signatures_past_the_window_are_pruned(server, tenant, database_url):
    tolerance = 300  # ORCHESTRATOR_WEBHOOK_TOLERANCE_S's default
    rows = {"old-" + "0" * 60: 3 * tolerance, "new-" + "0" * 60: tolerance // 2}
    engine = create_engine(database_url)
    with Session(engine) as session:
        session.add_all(
            WebhookDelivery(
                tenant_id=tenant["id"],
                signature=signature,
                received_at=utcnow() - timedelta(seconds=age_s),
            )
            for signature, age_s in rows.items()
        )
        session.commit()
    assert send_webhook(server.client, tenant, webhook_event()).status_code == 202
    with engine.connect() as connection:
        left = set(connection.scalars(text("SELECT signature FROM webhook_deliveries")))
    engine.dispose()
    assert "old-" + "0" * 60 not in left and "new-" + "0" * 60 in left


@pytest.mark.parametrize(
    "tenant_id", [str(2**31), "9223372036854775808", str(2**70), "-1", "0", "abc", "1.5"]
)
def test_a_hostile_tenant_header_is_a_4xx(server, tenant, tenant_id):
    response = send_webhook(server.client, tenant, webhook_event(), tenant_id=tenant_id)
    assert response.status_code == 422, response.text
    assert error_of(response)["param"] == "X-Tenant-Id"


def test_the_largest_tenant_id_unknown_is_a_401(server, tenant):
    response = send_webhook(server.client, tenant, webhook_event(), tenant_id=str(2**31 - 1))
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


def test_a_non_ascii_signature_is_a_401(server, tenant):
    body = webhook_event()
    signature = ("sha256=" + "é" * 64).encode("utf-8")  # httpx sends bytes as they are
    response = send_webhook(server.client, tenant, body, signature=signature)
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


@pytest.mark.parametrize("depth", [40, 3000])
def test_a_signed_deeply_nested_payload_is_a_422(server, tenant, depth):
    nested = '{"a": ' * depth + "1" + "}" * depth
    body = webhook_event(metadata="NESTED").replace(b'"NESTED"', nested.encode())
    response = send_webhook(server.client, tenant, body)
    assert response.status_code == 422, response.text[:300]
    assert error_of(response)["code"] == "json_too_deep"


def test_nul_characters_in_a_webhook_are_a_422_or_kept(server, tenant):
    refused = send_webhook(server.client, tenant, webhook_event(subject="a\u0000b"))
    assert refused.status_code == 422 and error_of(refused)["param"] == "subject"
    kept = send_webhook(server.client, tenant, webhook_event(metadata={"note": "a\u0000b"}))
    assert kept.status_code == 202, kept.text
