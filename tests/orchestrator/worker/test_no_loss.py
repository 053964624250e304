"""No accepted ticket is lost: not while Triton is down, not when the orchestrator is killed.

Both run with the default attempts and lease (tests/utils/orchestrator.py only speeds up the
backoff): an outage does not spend attempts, and a killed worker's lease lapses in 30 s.
"""

import time

import httpx
import pytest

from tests.utils.load import TICKET, Load
from tests.utils.orchestrator import Orchestrator, new_key, wait_until


def _all_done(client: httpx.Client, headers: dict, ids: list[int]) -> bool:
    answers = [client.get(f"/v1/tickets/{i}", headers=headers) for i in ids]
    assert all(a.status_code == 200 for a in answers), [
        a.text for a in answers if a.status_code != 200
    ][:3]
    statuses = [a.json()["status"] for a in answers]
    assert "failed" not in statuses
    return all(s == "done" for s in statuses)


def test_tickets_are_accepted_while_triton_is_down_and_processed_after(api, triton):
    headers = {"X-API-Key": new_key(api, ["tickets:write", "tickets:read"], "triton outage")}
    triton.stop()
    try:
        answers = [
            api.post("/v1/tickets", json={**TICKET, "body": f"{TICKET['body']} ({i})"},
                     headers=headers)
            for i in range(8)
        ]  # fmt: skip
        assert [a.status_code for a in answers] == [202] * 8
        ids = [a.json()["id"] for a in answers]
        # Down for longer than every attempt's backoff together (0.5 + 1 + 2 + ... s over
        # the default 8 attempts: about 14 s): an outage must not use up the attempts.
        time.sleep(20)
        ticket = api.get(f"/v1/tickets/{ids[0]}", headers=headers).json()
        assert ticket["status"] in ("queued", "processing") and ticket["triage"] is None
        assert api.get("/readyz").status_code == 503
    finally:
        triton.start()
        triton.wait_ready()
    wait_until(lambda: _all_done(api, headers, ids), 180, interval_s=1, what="the backlog")
    for ticket_id in ids:
        ticket = api.get(f"/v1/tickets/{ticket_id}", headers=headers).json()
        assert ticket["triage"]["intent"] and ticket["draft"]["text"]


def test_every_accepted_ticket_survives_sigkill_mid_load(database_url, triton_settings, triton):
    unlimited = {
        "ORCHESTRATOR_RATE_LIMIT_PER_MINUTE": "1000000",
        "ORCHESTRATOR_RATE_LIMIT_BURST": "100000",
    }
    orchestrator = Orchestrator(database_url, triton_settings, **unlimited).start()
    try:
        headers = {"X-API-Key": new_key(orchestrator.client, ["tickets:write", "tickets:read"],
                                        f"sigkill {time.time_ns()}")}  # fmt: skip
        with Load(str(orchestrator.client.base_url), headers) as load:
            wait_until(lambda: len(load.accepted) >= 20, 60, what="some accepted tickets")
            orchestrator.kill()
            time.sleep(0.5)
        accepted = list(load.accepted)
        assert len(accepted) >= 20
        orchestrator.start()  # the same database; the dead worker's leases run out
        missing = [
            i for i in accepted
            if orchestrator.client.get(f"/v1/tickets/{i}", headers=headers).status_code != 200
        ]  # fmt: skip
        assert missing == [], f"{len(missing)} accepted tickets were lost"
        wait_until(
            lambda: _all_done(orchestrator.client, headers, accepted),
            300,
            interval_s=2,
            what=f"all {len(accepted)} tickets to be processed after the restart",
        )
    finally:
        orchestrator.close()


@pytest.fixture(autouse=True)
def _triton_back_up(triton):
    """Whatever happens in a test here, the session's Triton is serving afterwards."""
    yield
    if triton.process is None or triton.process.poll() is not None:
        triton.start()
        triton.wait_ready()
