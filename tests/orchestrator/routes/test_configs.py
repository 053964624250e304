"""Versioned configurations per environment: PUT makes a version and activates it, history,
rollback, audit and validation; a staging key and a production key then get different chat
and draft settings. In process, with a recording LLM in place of Triton's (fast)."""

import pytest

from orchestrator.db.models import ConfigVersion
from orchestrator.services.drafts import OPENING_INSTRUCTIONS, OPENING_STOP
from orchestrator.triton.llm_client import Generation
from tests.utils.feedback import app_without_triton, new_ticket
from tests.utils.orchestrator import ADMIN_KEY, error_of, new_key, new_tenant

ADMIN = {"X-API-Key": ADMIN_KEY}
REPLY = "Your card is on its way."
DRAFT_SENTENCE = " your card, due in 3 days"  # fails the checks (a number): both attempts run


class _Answer:
    """What FailoverLLM.stream gives: text pieces, then a Generation, and `model`."""

    model = "llm"

    def __init__(self, text: str):
        self._items = self._pieces(text)

    @staticmethod
    async def _pieces(text: str):
        yield text
        yield Generation(text, "stop", 12, 6, model="llm")

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._items.__anext__()

    async def aclose(self) -> None:
        await self._items.aclose()


class RecordingLLM:
    """Records what each call sends; drafts' sentences fail the checks (a number), so every
    draft makes both attempts and the retry's settings are seen too."""

    def __init__(self):
        self.calls: list[dict] = []

    def stream(self, messages: list[dict], **params) -> _Answer:
        self.calls.append({"messages": messages, **params})
        drafting = messages[0]["role"] == "system" and "Thank you for getting in touch" in str(
            messages
        )
        return _Answer(DRAFT_SENTENCE if drafting else REPLY)

    async def generate(self, messages: list[dict], **params) -> Generation:
        self.calls.append({"messages": messages, **params})
        return Generation(DRAFT_SENTENCE, "stop", 90, 8, model="llm")


@pytest.fixture(scope="module")
def client(database_url):
    with app_without_triton(database_url) as client:
        state = client.app.state
        real = state.llm
        state.llm = state.chat.llm = RecordingLLM()
        yield client
        state.llm = state.chat.llm = real  # closed by the app's shutdown


@pytest.fixture
def llm(client) -> RecordingLLM:
    client.app.state.llm.calls.clear()
    return client.app.state.llm


def _put(client, name: str, environment: str, body: dict, headers=ADMIN):
    return client.put(f"/v1/configs/{name}?environment={environment}", json=body, headers=headers)


def _rollback(client, name: str, environment: str, body: dict | None = None):
    return client.post(
        f"/v1/configs/{name}/rollback?environment={environment}", json=body, headers=ADMIN
    )


def _get(client, path: str, **params) -> dict:
    answer = client.get(path, params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _audit(client) -> list[dict]:
    return [
        e
        for e in _get(client, "/v1/model/audit", limit=200)["data"]
        if e["target"] == "config drafts@staging"
    ]


def test_without_a_version_an_environment_gets_the_defaults_as_version_0(client):
    for environment in ("production", "staging"):
        drafts = _get(client, "/v1/configs/drafts", environment=environment)
        assert drafts["version"] == 0 and drafts["active"] and drafts["key_id"] is None
        assert drafts["config"] == {
            "system_prompt": OPENING_INSTRUCTIONS,
            "retry_temperature": 0.7,
            "max_tokens": None,
            "stop": list(OPENING_STOP),
        }
    chat = _get(client, "/v1/configs/chat")  # production unless asked
    assert chat["environment"] == "production" and chat["version"] == 0
    assert chat["config"] == {
        "system_prompt": None,
        "temperature": 0.7,
        "max_tokens": None,
        "stop": None,
    }


def test_put_makes_versions_history_lists_them_and_rollback_keeps_them_all(client):
    bodies = [{"retry_temperature": t} for t in (0.1, 0.2, 0.3)]
    for number, body in enumerate(bodies, start=1):
        made = _put(client, "drafts", "staging", body)
        assert made.status_code == 201, made.text
        assert made.json()["version"] == number and made.json()["active"]
        assert made.json()["config"]["retry_temperature"] == body["retry_temperature"]
        assert made.json()["config"]["stop"] == list(OPENING_STOP)  # left out: the default
    assert _get(client, "/v1/configs/drafts", environment="staging")["version"] == 3
    assert _get(client, "/v1/configs/drafts", environment="production")["version"] == 0

    first = _get(client, "/v1/configs/drafts/versions", environment="staging", limit=2)
    assert [v["version"] for v in first["data"]] == [3, 2]  # newest first
    assert [v["active"] for v in first["data"]] == [True, False]
    rest = _get(
        client,
        "/v1/configs/drafts/versions",
        environment="staging",
        limit=2,
        cursor=first["next_cursor"],
    )
    assert [v["version"] for v in rest["data"]] == [1] and rest["next_cursor"] is None

    back = _rollback(client, "drafts", "staging")  # default: the one below the active one
    assert back.status_code == 200, back.text
    assert back.json()["version"] == 2 and back.json()["config"]["retry_temperature"] == 0.2
    assert _get(client, "/v1/configs/drafts", environment="staging")["version"] == 2
    assert _rollback(client, "drafts", "staging", {"version": 3}).json()["version"] == 3
    to_defaults = _rollback(client, "drafts", "staging", {"version": 0}).json()
    assert to_defaults["version"] == 0 and to_defaults["config"]["retry_temperature"] == 0.7
    nothing = _rollback(client, "drafts", "staging")
    assert nothing.status_code == 409 and error_of(nothing)["code"] == "no_earlier_version"
    missing = _rollback(client, "drafts", "staging", {"version": 9})
    assert missing.status_code == 404 and error_of(missing)["param"] == "version"

    history = _get(client, "/v1/configs/drafts/versions", environment="staging")["data"]
    assert [v["version"] for v in history] == [3, 2, 1]  # a rollback deletes nothing
    assert not any(v["active"] for v in history)  # the defaults are active
    with client.app.state.sessions() as session:
        assert session.query(ConfigVersion).filter_by(name="drafts").count() == 3

    entries = _audit(client)  # newest first
    assert [(e["action"], e["request"]) for e in reversed(entries)] == [
        ("config_put", {"version": 1}),
        ("config_put", {"version": 2}),
        ("config_put", {"version": 3}),
        ("config_rollback", {"version": 2, "from_version": 3}),
        ("config_rollback", {"version": 3, "from_version": 2}),
        ("config_rollback", {"version": 0, "from_version": 3}),
    ]  # the refused rollbacks left none
    assert all(e["result"] == "ok" and isinstance(e["key_id"], int) for e in entries)


@pytest.mark.parametrize(
    ("name", "body", "param"),
    [
        ("chat", {"temperature": 2.5}, "temperature"),
        ("chat", {"temperature": -0.1}, "temperature"),
        ("chat", {"max_tokens": 0}, "max_tokens"),
        ("chat", {"max_tokens": 4097}, "max_tokens"),
        ("chat", {"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("chat", {"stop": [""]}, "stop.0"),
        ("chat", {"system_prompt": ""}, "system_prompt"),
        ("chat", {"system_prompt": "x" * 32_001}, "system_prompt"),
        ("chat", {"retry_temperature": 0.5}, "retry_temperature"),  # a drafts field
        ("chat", {"tempreature": 0.5}, "tempreature"),
        ("drafts", {"max_tokens": 7}, "max_tokens"),
        ("drafts", {"max_tokens": 257}, "max_tokens"),
        ("drafts", {"retry_temperature": 3}, "retry_temperature"),
        ("drafts", {"system_prompt": None}, "system_prompt"),
        ("drafts", {"temperature": 0.5}, "temperature"),  # a chat field
    ],
)
def test_a_config_outside_its_model_is_a_422_naming_the_field(client, name, body, param):
    refused = _put(client, name, "staging", body)
    assert refused.status_code == 422, refused.text
    assert error_of(refused)["param"] == param


def test_unknown_names_and_environments_are_refused(client):
    for answer in (
        client.get("/v1/configs/prompts", headers=ADMIN),
        _put(client, "prompts", "production", {}),
        client.get("/v1/configs/prompts/versions", headers=ADMIN),
        _rollback(client, "prompts", "production"),
    ):
        assert answer.status_code == 404, answer.text
        error = error_of(answer)
        assert error["code"] == "config_not_found" and "chat, drafts" in error["message"]
    refused = client.get("/v1/configs/chat?environment=qa", headers=ADMIN)
    assert refused.status_code == 422 and error_of(refused)["param"] == "environment"
    not_object = client.put("/v1/configs/chat", json=[1], headers=ADMIN)
    assert not_object.status_code == 422


def test_tenant_admins_read_configurations_and_only_platform_admins_write_them(client):
    tenant_id = new_tenant(client, "config readers")["id"]
    tenant_admin = {"X-API-Key": new_key(client, ["admin"], tenant_id)}
    chat_only = {"X-API-Key": new_key(client, ["chat"], tenant_id)}
    assert client.get("/v1/configs/chat", headers=tenant_admin).status_code == 200
    assert client.get("/v1/configs/chat/versions", headers=tenant_admin).status_code == 200
    assert _put(client, "chat", "production", {}, headers=tenant_admin).status_code == 403
    rollback = client.post("/v1/configs/chat/rollback", headers=tenant_admin)
    assert rollback.status_code == 403
    assert client.get("/v1/configs/chat", headers=chat_only).status_code == 403


def _chat(client, key: str, **request):
    asked = {"model": "llm", "messages": [{"role": "user", "content": "Hi"}], **request}
    answer = client.post("/v1/chat/completions", json=asked, headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    return answer


def test_staging_and_production_keys_get_their_own_chat_settings(client, llm):
    tenant_id = new_tenant(client, "chat environments")["id"]
    production = new_key(client, ["chat"], tenant_id)
    staging = new_key(client, ["chat"], tenant_id, environment="staging")
    assert _put(client, "chat", "production", {"temperature": 0.5}).status_code == 201
    staged = {"system_prompt": "Answer in one line.", "temperature": 0.2, "max_tokens": 64}
    assert _put(client, "chat", "staging", {**staged, "stop": ["END"]}).status_code == 201

    _chat(client, production)
    _chat(client, staging)
    sent_production, sent_staging = llm.calls
    assert sent_production["messages"] == [{"role": "user", "content": "Hi"}]
    assert (sent_production["temperature"], sent_production["max_tokens"]) == (0.5, 256)
    assert sent_production["stop"] is None
    assert sent_staging["messages"] == [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "Hi"},
    ]
    assert (sent_staging["temperature"], sent_staging["max_tokens"]) == (0.2, 64)
    assert sent_staging["stop"] == ["END"]

    # What the request sets itself wins; what it leaves out still comes from staging's.
    own = [{"role": "system", "content": "Be formal."}, {"role": "user", "content": "Hi"}]
    _chat(client, staging, messages=own, temperature=0.0, stream=True)
    assert llm.calls[-1]["messages"] == own
    assert (llm.calls[-1]["temperature"], llm.calls[-1]["max_tokens"]) == (0.0, 64)
    _chat(client, staging, max_tokens=9, stop="STOP")
    assert (llm.calls[-1]["max_tokens"], llm.calls[-1]["stop"]) == (9, ["STOP"])

    # A new version applies at once here (the cache is cleared), and a rollback too.
    assert _put(client, "chat", "staging", {"temperature": 1.1}).status_code == 201
    _chat(client, staging)
    assert llm.calls[-1]["temperature"] == 1.1 and llm.calls[-1]["messages"][0]["role"] == "user"
    assert _rollback(client, "chat", "staging").json()["version"] == 1
    _chat(client, staging)
    assert llm.calls[-1]["temperature"] == 0.2

    # The history keeps what the caller sent, not the configuration's system prompt.
    history = client.get("/v1/chat/history?limit=1", headers={"X-API-Key": staging}).json()
    assert history["data"][0]["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_regenerated_draft_uses_the_configuration_of_the_tickets_environment(client, llm):
    tenant_id = new_tenant(client, "draft environments")["id"]
    scopes = ["tickets:write", "tickets:read"]
    staging = {"X-API-Key": new_key(client, scopes, tenant_id, environment="staging")}
    production = {"X-API-Key": new_key(client, scopes, tenant_id)}
    custom = {
        "system_prompt": "Write one short sentence.",
        "retry_temperature": 0.3,
        "max_tokens": 16,
        "stop": ["."],
    }
    assert _put(client, "drafts", "staging", custom).status_code == 201
    ticket = {"subject": "Card", "body": "My card has not arrived."}
    staged_ticket = new_ticket(client, staging, ticket, "card_arrival")
    production_ticket = new_ticket(client, production, ticket, "card_arrival")

    sent = {}
    for ticket_id in (staged_ticket, production_ticket):
        llm.calls.clear()
        # the production key asks for the staging ticket: the ticket's environment decides
        drafted = client.post(f"/v1/tickets/{ticket_id}/draft", headers=production)
        assert drafted.status_code == 200, drafted.text
        assert drafted.json()["draft"]["source"] == "fallback"  # both sentences refused
        sent[ticket_id] = list(llm.calls)
    first, retry = sent[staged_ticket]
    assert first["messages"][0] == {"role": "system", "content": "Write one short sentence."}
    assert (first["temperature"], retry["temperature"]) == (0.0, 0.3)
    assert first["max_tokens"] == 16 and first["stop"] == ["."]
    first, retry = sent[production_ticket]
    assert first["messages"][0] == {"role": "system", "content": OPENING_INSTRUCTIONS}
    assert (first["temperature"], retry["temperature"]) == (0.0, 0.7)
    settings = client.app.state.settings
    assert first["max_tokens"] == settings.draft_max_tokens and first["stop"] == list(OPENING_STOP)
