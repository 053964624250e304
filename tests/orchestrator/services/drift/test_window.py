"""Which tickets a drift run compares, the minimum sample, the override rate and the reports'
retention, on SQLite and PostgreSQL; no Triton (a pass with too few tickets never calls it)."""

import asyncio
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from orchestrator.db.models import DriftRun, Ticket
from orchestrator.db.session import make_engine, session_factory
from orchestrator.services.drift.monitor import DriftMonitor, split_scopes
from orchestrator.services.drift.runs import prune_reports
from orchestrator.services.drift.window import ALL, Scope, load_window, scopes
from orchestrator.settings import DriftSettings
from orchestrator.triton.triage_client import Prediction
from tests.utils.drift import add_tenant, add_ticket, correct_intent, hours_ago, past_run


def predicted(intent: str, confidence: float = 0.8) -> Prediction:
    return Prediction(intent, confidence, [(intent, confidence), ("card_arrival", 0.1)], "1")


@pytest.fixture()
def sessions(database_url):
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture()
def traffic(sessions, request):
    """Tenant A: 5 predicted tickets (newest last), one untriaged, one too old, one whose
    intent an agent set before triage; tenant B: 2 predicted. Names unique per test."""
    with sessions() as session:
        a, key = add_tenant(session, f"a-{request.node.name}"[:60])
        b, _ = add_tenant(session, f"b-{request.node.name}"[:60])
        tickets = [
            add_ticket(session, a, f"text {i}", predicted("lost_or_stolen_card"), hours_ago(5 - i))
            for i in range(5)
        ]
        add_ticket(session, a, "not triaged yet", None)
        add_ticket(session, a, "too old", predicted("exchange_rate"), hours_ago(200))
        agent_set = add_ticket(session, a, "set by an agent", None)
        agent_set.intent = "card_arrival"  # no confidence, no top: not the model's
        for i in range(2):
            add_ticket(session, b, f"b text {i}", predicted("exchange_rate"), hours_ago(1))
        session.commit()
        return a, b, key, [t.id for t in tickets]


def test_window_takes_the_newest_predicted_tickets_within_the_age(sessions, traffic):
    a, *_ = traffic
    with sessions() as session:
        found = {s.tenant_id: s for s in scopes(session, hours=24)}
        window = load_window(session, found[a], size=3, hours=24)
    assert found[a].available == 5
    assert [t.text for t in window.tickets] == ["text 4", "text 3", "text 2"]
    assert {t.intent for t in window.tickets} == {"lost_or_stolen_card"}
    assert window.corrected == 0 and window.override_rate is None  # nobody corrected


def test_all_tenants_scope_and_each_tenant_with_its_name(sessions, traffic):
    a, b, _, _ = traffic
    with sessions() as session:
        found = scopes(session, hours=24)
        everything = load_window(session, found[0], size=100, hours=24)
    assert found[0].tenant_id is ALL and found[0].name == "all"
    by_id = {s.tenant_id: s for s in found[1:]}
    assert by_id[a].available == 5 and by_id[b].available == 2
    assert by_id[a].name.startswith("a-")
    assert everything.size >= 7  # other tests' tenants share the module's database


def test_a_corrected_ticket_keeps_the_models_intent_and_counts_as_overridden(sessions, traffic):
    a, _, key, ids = traffic
    with sessions() as session:
        correct_intent(session, session.get(Ticket, ids[-1]), key, "card_arrival")
        session.commit()
        found = {s.tenant_id: s for s in scopes(session, hours=24)}
        window = load_window(session, found[a], size=10, hours=24)
    assert window.tickets[0].intent == "lost_or_stolen_card"  # the model's, not the agent's
    assert window.corrected == 1 and window.override_rate == pytest.approx(1 / 5)


def test_scopes_below_the_minimum_sample_are_skipped():
    found = [Scope(ALL, "all", 60), Scope(1, "big", 55), Scope(2, "small", 5)]
    compared, skipped = split_scopes(found, min_sample=50)
    assert [s.name for s in compared] == ["all", "big"]
    assert [s.name for s in skipped] == ["small"]


def test_a_pass_with_too_few_tickets_compares_nothing_and_never_calls_triton(
    sessions, traffic, tmp_path
):
    settings = DriftSettings(min_sample=50, reports_dir=tmp_path, cache_dir=tmp_path)
    result = asyncio.run(DriftMonitor(sessions, None, None, settings).run_pass())
    assert result.pass_id is None and result.runs == []
    summary = result.summary()
    assert summary.min_sample == 50 and summary.runs == []
    assert {s.tenant for s in summary.skipped} >= {"all"}
    assert all(s.tickets < 50 for s in summary.skipped)


def test_reports_older_than_the_retention_are_deleted_and_their_runs_kept(sessions, tmp_path):
    with sessions() as session:
        for name, age in (("old.html", timedelta(days=8)), ("new.html", timedelta(days=6))):
            (tmp_path / name).write_text("<html>")
            session.add(past_run(name, age, pass_id=name[:3] * 10))
        session.commit()
        assert prune_reports(session, tmp_path, days=7) == 1
        assert prune_reports(session, tmp_path, days=7) == 0  # already gone
        runs = session.scalar(select(func.count()).where(DriftRun.report_file.like("%.html")))
    assert not (tmp_path / "old.html").exists() and (tmp_path / "new.html").exists()
    assert runs >= 2


class CountingEmbedder:
    """embed() as EmbeddingClient's: one row per text (its length), texts counted."""

    def __init__(self):
        self.texts: list[str] = []

    async def embed(self, texts):
        self.texts += texts
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_a_pass_asks_triton_for_each_texts_embedding_once():
    embedder = CountingEmbedder()
    monitor = DriftMonitor(None, None, embedder, DriftSettings())
    embedded: dict = {}

    async def two_windows():
        everyone = await monitor._embed(["a", "bb", "a", "ccc"], embedded)
        one_tenant = await monitor._embed(["bb", "dddd"], embedded)
        return everyone, one_tenant

    everyone, one_tenant = asyncio.run(two_windows())
    assert embedder.texts == ["a", "bb", "ccc", "dddd"]
    assert everyone[:, 0].tolist() == [1, 2, 1, 3] and one_tenant[:, 0].tolist() == [2, 4]
