"""The control plane against the real Triton: status, load and unload, each audited."""

import httpx
import pytest

from tests.utils.orchestrator import Orchestrator, admin, error_of, new_key


def _states(api, model: str) -> dict[str, str]:
    models = admin(api, "GET", "/v1/model/status").json()["models"]
    return {m["version"]: m["state"] for m in models if m["name"] == model}


def _ready(api, model: str) -> set[str]:
    return {version for version, state in _states(api, model).items() if state == "READY"}


def test_status_lists_every_model_with_versions_and_states(api):
    response = admin(api, "GET", "/v1/model/status")
    assert response.status_code == 200
    names = {m["name"] for m in response.json()["models"]}
    assert {"ticket_triage", "ticket_encoder", "ticket_classifier", "llm"} <= names
    assert _states(api, "ticket_triage") == {"1": "READY"}


def test_non_admin_keys_get_403(api):
    key = {"X-API-Key": new_key(api, ["tickets:write", "tickets:read", "chat"], "not admin")}
    assert api.get("/v1/model/status", headers=key).status_code == 403
    assert api.post("/v1/model/unload", json={"model": "llm"}, headers=key).status_code == 403


def test_unload_and_load_are_audited_and_report_memory(api):
    try:
        unloaded = admin(api, "POST", "/v1/model/unload", json={"model": "ticket_triage"})
        assert unloaded.status_code == 200, unloaded.text
        body = unloaded.json()
        assert body["result"] == "ok" and body["action"] == "unload"
        assert set(body["memory"]) == {
            "scope", "before_bytes", "after_bytes", "delta_bytes", "freed_bytes"}  # fmt: skip
        assert body["memory"]["scope"] == "triton_processes"  # Triton runs on this host
        # Triton answers an unload before it is done; the control plane waits for it.
        assert _states(api, "ticket_triage").get("1") == "UNAVAILABLE"
    finally:
        loaded = admin(api, "POST", "/v1/model/load", json={"model": "ticket_triage"})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["models"] == [
        {"name": "ticket_triage", "version": "1", "state": "READY", "reason": ""}
    ]
    audit = admin(api, "GET", "/v1/model/audit?limit=2").json()["data"]
    assert [(a["action"], a["target"], a["result"]) for a in audit] == [
        ("load", "ticket_triage", "ok"),
        ("unload", "ticket_triage", "ok"),
    ]
    assert (
        'support_model_memory_delta_bytes{action="load",model="ticket_triage"}'
        in api.get("/metrics").text
    )


def test_a_version_can_be_chosen_and_the_default_restored(api):
    assert _ready(api, "ticket_encoder") == {"2"}  # the latest version (INT8) serves by default
    try:
        switched = admin(
            api, "POST", "/v1/model/load", json={"model": "ticket_encoder", "version": 1}
        )
        assert switched.status_code == 200, switched.text
        assert _states(api, "ticket_encoder").get("1") == "READY"
        assert _states(api, "ticket_encoder").get("2") != "READY"
    finally:
        restored = admin(api, "POST", "/v1/model/load", json={"model": "ticket_encoder"})
    assert restored.status_code == 200
    assert _ready(api, "ticket_encoder") == {"2"}  # version 1 is now listed as UNAVAILABLE


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/model/load", {"model": "no_such_model"}, 404, "model"),
        ("/v1/model/unload", {"model": "no_such_model"}, 404, "model"),
        ("/v1/model/load", {"model": "ticket_encoder", "version": 9}, 422, "model"),
        ("/v1/model/load", {"model": "ticket_encoder", "version": 0}, 422, "version"),
        ("/v1/model/load", {"name": "llm"}, 422, "model"),
    ],
)
def test_bad_control_requests_get_a_clear_4xx(api, path, body, status, param):
    try:
        response = admin(api, "POST", path, json=body)
        assert response.status_code == status, response.text
        assert error_of(response)["param"] == param
        if body.get("version") == 9:  # Triton refused: audited as an error with its reason
            audit = admin(api, "GET", "/v1/model/audit?limit=1").json()["data"][0]
            assert (audit["action"], audit["result"]) == ("load", "error") and audit["detail"]
    finally:
        if body.get("version") == 9:
            admin(api, "POST", "/v1/model/load", json={"model": "ticket_encoder"})


# ---------------------------------------------------------------- config overrides


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"default_model_filename": "../../../../etc/passwd"}, "config.default_model_filename"),
        ({"parameters": {"model_path": {"string_value": "/etc/shadow"}}}, "config.parameters"),
        ({"backend": "python"}, "config.backend"),
        ({"dynamic_batching": {"max_queue_delay_microseconds": 5, "x": 1}},
         "config.dynamic_batching.x"),
        ({"instance_group": [{"count": 9}]}, "config.instance_group.0.count"),
        ({"instance_group": [{"count": 1, "kind": "KIND_GPU"}]}, "config.instance_group.0.kind"),
        ({"instance_group": [{"count": 1, "gpus": [0]}]}, "config.instance_group.0.gpus"),
        ({"version_policy": {"specific": {"versions": [1]}, "path": "/"}},
         "config.version_policy.path"),
    ],
)  # fmt: skip
def test_config_fields_outside_the_allow_list_are_refused_naming_the_field(api, config, param):
    response = admin(
        api, "POST", "/v1/model/load", json={"model": "ticket_classifier", "config": config}
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["param"] == param
    assert _states(api, "ticket_classifier") == {"1": "READY"}  # nothing reached Triton


def _served_config(triton_settings, model: str) -> dict:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton_settings.grpc_url)
    return client.get_model_config(model, as_json=True)["config"]


def test_an_allowed_override_is_merged_onto_the_repository_config(api, triton_settings):
    override = {
        "dynamic_batching": {"max_queue_delay_microseconds": 250},
        "instance_group": [{"count": 2}],
    }
    try:
        response = admin(
            api, "POST", "/v1/model/load", json={"model": "ticket_classifier", "config": override}
        )
        assert response.status_code == 200, response.text
        served = _served_config(triton_settings, "ticket_classifier")
        assert served["dynamic_batching"]["max_queue_delay_microseconds"] == "250"
        assert served["instance_group"][0]["count"] == 2
        assert served["instance_group"][0]["kind"] == "KIND_CPU"
        # The rest of config.pbtxt is kept: the override is merged, not a replacement.
        assert served["backend"] == "onnxruntime"
        assert "intra_op_thread_count" in served["parameters"]
        report = {r["model"]: r for r in response.json()["report"]}["ticket_classifier"]
        assert report["processes_after"] == 2  # two instances, the old one gone
    finally:
        restored = admin(api, "POST", "/v1/model/load", json={"model": "ticket_classifier"})
    assert restored.status_code == 200, restored.text
    assert _served_config(triton_settings, "ticket_classifier")["instance_group"][0]["count"] == 1


def test_tritons_error_text_is_not_echoed_but_logged_under_a_reference(api, triton_settings):
    try:
        response = admin(
            api, "POST", "/v1/model/load", json={"model": "ticket_encoder", "version": 9}
        )
        assert response.status_code == 422, response.text
        message = error_of(response)["message"]
        assert "reference" in message
        assert str(triton_settings.model_repository) not in message
        assert "version 9" not in message  # Triton's own wording stays in the log
        audit = admin(api, "GET", "/v1/model/audit?limit=1").json()["data"][0]
        assert audit["result"] == "error" and "reference" in audit["detail"]
    finally:
        admin(api, "POST", "/v1/model/load", json={"model": "ticket_encoder"})


# ---------------------------------------------------------------- unload really frees


def _triton_tree(triton) -> tuple[int, int]:
    """(backend stub processes, RSS of tritonserver and all its children)."""
    import psutil

    server = psutil.Process(triton.process.pid)
    stubs, rss = 0, server.memory_info().rss
    for child in server.children(recursive=True):
        try:
            rss += child.memory_info().rss
            stubs += child.name() == "triton_python_backend_stub"
        except psutil.Error:
            pass
    return stubs, rss


class _LightTraffic:
    """A thread sending a triage or a short chat request every few hundred milliseconds."""

    def __init__(self, api, triage_key: str, chat_key: str):
        import threading

        self.client = httpx.Client(base_url=api.base_url, timeout=60)
        self.keys = {"triage": triage_key, "chat": chat_key}
        self.answers: list[tuple[str, int, str | None]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        bodies = {
            "triage": ("/v1/triage", {"texts": ["my card has not arrived yet"]}),
            "chat": ("/v1/chat/completions",
                     {"model": "llm", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 4}),
        }  # fmt: skip
        turn = 0
        while not self.stopping.wait(0.3):
            kind = ("triage", "chat")[turn % 2]
            turn += 1
            path, body = bodies[kind]
            response = self.client.post(path, json=body, headers={"X-API-Key": self.keys[kind]})
            self.answers.append((kind, response.status_code, response.headers.get("Retry-After")))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(60)
        self.client.close()


@pytest.fixture(scope="module")
def api_without_failover(database_url, triton_settings, triton):
    """The orchestrator with failover off, so that chat shows `llm` itself coming and going.

    With failover on, the chat sent while `llm` was away went unanswered for 60 s in full
    suite runs (never when this module runs alone; the cause is not found yet, see the
    README's LLM failover section); the fallback's answering during an unload is tested on a
    Triton of its own in test_failover.py.
    """
    orchestrator = Orchestrator(
        database_url,
        triton_settings,
        ORCHESTRATOR_LLM_FALLBACK="",
        ORCHESTRATOR_RATE_LIMIT_PER_MINUTE="600",
        ORCHESTRATOR_RATE_LIMIT_BURST="40",
    ).start()
    yield orchestrator.client
    orchestrator.close()


@pytest.mark.slow
def test_ten_unload_reload_cycles_free_the_processes_and_memory_under_traffic(
    api_without_failover, triton
):
    api = api_without_failover
    triage_key = new_key(api, ["tickets:write"], "cycle triage")
    chat_key = new_key(api, ["chat"], "cycle chat")
    stubs_at_start, rss_at_start = _triton_tree(triton)
    with _LightTraffic(api, triage_key, chat_key) as traffic:
        for cycle in range(10):
            for model, dependents in (("llm", False), ("ticket_triage", True)):
                asked = {"model": model, "unload_dependents": dependents}
                unloaded = admin(api, "POST", "/v1/model/unload", json=asked)
                assert unloaded.status_code == 200, (cycle, unloaded.text)
                body = unloaded.json()
                assert body["result"] == "ok"
                for report in body["report"]:
                    assert report["state_after"] == "UNAVAILABLE", report
                    assert report["processes_after"] == 0, report
                if model == "llm":
                    (llm,) = body["report"]
                    assert llm["processes_before"] == 1 and llm["freed_bytes"] > 50 << 20, llm
                    chat = api.post("/v1/chat/completions", headers={"X-API-Key": chat_key},
                                    json={"model": "llm", "messages": [
                                        {"role": "user", "content": "hi"}]})  # fmt: skip
                    assert chat.status_code == 503, chat.text  # retryable, not a 500
                    assert chat.headers["Retry-After"], chat.headers
                loaded = admin(api, "POST", "/v1/model/load", json={"model": model})
                assert loaded.status_code == 200, (cycle, loaded.text)
                assert loaded.json()["result"] == "ok"
    stubs_at_end, rss_at_end = _triton_tree(triton)
    assert stubs_at_end == stubs_at_start
    assert rss_at_end <= rss_at_start * 1.15, (rss_at_start >> 20, rss_at_end >> 20)
    server_errors = [a for a in traffic.answers if a[1] >= 500 and a[1] != 503]
    assert server_errors == []
    assert all(retry for _, status, retry in traffic.answers if status == 503)
    assert {kind for kind, status, _ in traffic.answers if status == 200} == {"triage", "chat"}
    audit = admin(api, "GET", "/v1/model/audit?limit=40").json()["data"]
    assert [a["result"] for a in audit] == ["ok"] * 40
    llm_unloads = [a for a in audit if (a["action"], a["target"]) == ("unload", "llm")]
    assert len(llm_unloads) == 10
    for entry in llm_unloads:
        (llm,) = entry["report"]["models"]
        assert llm["freed_bytes"] > 0 and entry["report"]["memory"]["freed_bytes"] > 0


# ---------------------------------------------------------------- restricted repository API


def test_tritons_repository_api_refuses_calls_without_the_control_header(tmp_path):
    import asyncio

    from orchestrator.settings import TritonSettings
    from orchestrator.triton.control import ControlFailed, ModelControl
    from orchestrator.triton.launcher import TritonServer
    from tests.utils.ports import free_ports

    (tmp_path / "repository" / "empty_model").mkdir(parents=True)
    http, grpc, metrics = free_ports(3)
    settings = TritonSettings(
        http_port=http, grpc_port=grpc, metrics_port=metrics,
        model_repository=tmp_path / "repository", work_dir=tmp_path / "work",
        log_file=tmp_path / "triton.log", control_secret="s3cret-value",
    )  # fmt: skip
    headers = settings.control_headers
    assert headers == {"triton-repository-key": "s3cret-value"}

    async def index(control_headers):
        control = ModelControl(settings.grpc_url, headers=control_headers)
        try:
            return await control.index()
        finally:
            await control.close()

    with TritonServer(settings, models=()):
        base = f"http://{settings.http_url}/v2"
        assert httpx.get(f"{base}/health/ready").status_code == 200  # the rest stays open
        refused = httpx.post(f"{base}/repository/index")
        assert refused.status_code in (401, 403), refused.text
        assert httpx.post(f"{base}/repository/index", headers=headers).status_code == 200
        wrong = {"triton-repository-key": "guess"}
        assert httpx.post(f"{base}/repository/models/x/unload", headers=wrong).status_code in (
            401, 403)  # fmt: skip
        with pytest.raises(ControlFailed):
            asyncio.run(index(None))
        assert [m.name for m in asyncio.run(index(headers))] == ["empty_model"]
