"""Model versions without a database: every rollout move, allowed and refused; the canary's
stable share of traffic; staging's versions; a batch split into one Triton call per version."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.db.models import ModelVersion
from orchestrator.errors import Conflict, InvalidInput, NotFound
from orchestrator.metrics import Metrics
from orchestrator.services import versions
from orchestrator.services.triage import triage_texts
from orchestrator.services.versions import Routing, choose_version, routing_of
from tests.utils.triage import MODEL, TEXTS, RecordingTriage

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _rows(*states: str, percent: int | None = None) -> list[ModelVersion]:
    """Versions 1, 2, ... in `states`; a later version was last changed later."""
    return [
        ModelVersion(
            model=MODEL,
            version=number,
            state=state,
            canary_percent=percent if state == "canary" else None,
            created_at=T0,
            updated_at=T0 + timedelta(minutes=number),
        )
        for number, state in enumerate(states, start=1)
    ]


def _states(rows: list[ModelVersion]) -> list[tuple[str, int | None]]:
    return [(r.state, r.canary_percent) for r in rows]


# ---- the transition table ------------------------------------------------------------------
def test_register_adds_a_candidate_and_refuses_a_known_number():
    rows = _rows("production")
    added = versions.register(rows, MODEL, 2, "retrained on November's corrections")
    assert (added.version, added.state, added.note) == (2, "candidate", added.note)
    with pytest.raises(Conflict, match="already registered \\(production\\)") as refused:
        versions.register(rows, MODEL, 1, None)
    assert refused.value.code == "version_exists"


def test_a_candidate_becomes_the_canary_and_the_canary_may_change_its_share():
    rows = _rows("production", "candidate")
    versions.start_canary(rows, MODEL, 2, 30)
    assert _states(rows) == [("production", None), ("canary", 30)]
    versions.start_canary(rows, MODEL, 2, 60)
    assert _states(rows) == [("production", None), ("canary", 60)]


@pytest.mark.parametrize(
    ("states", "version", "code"),
    [
        (("production",), 1, "invalid_transition"),  # production is not a candidate
        (("archived", "production"), 1, "invalid_transition"),
        (("production", "rolled_back"), 2, "invalid_transition"),
        (("production", "canary", "candidate"), 3, "canary_exists"),  # one canary at a time
    ],
)
def test_only_a_candidate_or_the_canary_itself_can_be_made_the_canary(states, version, code):
    rows = _rows(*states, percent=10)
    before = _states(rows)
    with pytest.raises(Conflict) as refused:
        versions.start_canary(rows, MODEL, version, 20)
    assert refused.value.code == code and refused.value.message
    assert _states(rows) == before  # a refusal changes nothing


def test_canary_of_an_unknown_version_is_404_and_a_share_outside_1_to_99_is_refused():
    rows = _rows("production", "candidate")
    with pytest.raises(NotFound, match="register it first"):
        versions.start_canary(rows, MODEL, 7, 10)
    for percent in (0, 100):
        with pytest.raises(InvalidInput):
            versions.start_canary(rows, MODEL, 2, percent)


def test_promote_makes_the_canary_production_and_archives_the_old_production():
    rows = _rows("archived", "production", "canary", "candidate", percent=25)
    assert versions.promote(rows, MODEL).version == 3
    assert _states(rows) == [
        ("archived", None),
        ("archived", None),
        ("production", None),  # its share cleared: it takes everything now
        ("candidate", None),
    ]


def test_promote_without_a_canary_is_a_409():
    rows = _rows("production", "candidate")
    with pytest.raises(Conflict, match="no canary to promote") as refused:
        versions.promote(rows, MODEL)
    assert refused.value.code == "no_canary"


def test_rollback_of_a_canary_keeps_production():
    rows = _rows("archived", "production", "canary", percent=25)
    assert versions.rollback(rows, MODEL).version == 3
    assert _states(rows) == [("archived", None), ("production", None), ("rolled_back", None)]


def test_rollback_without_a_canary_restores_the_version_archived_last():
    # version 2 was archived after version 1 (its updated_at is later)
    rows = _rows("archived", "archived", "production", "candidate")
    assert versions.rollback(rows, MODEL).version == 3
    assert _states(rows) == [
        ("archived", None),
        ("production", None),
        ("rolled_back", None),
        ("candidate", None),
    ]
    assert versions.rollback(rows, MODEL).version == 2  # and once more, to version 1
    assert [r.state for r in rows][:2] == ["production", "rolled_back"]


@pytest.mark.parametrize(
    "states", [("production",), ("production", "candidate"), ("rolled_back", "production")]
)
def test_rollback_with_nothing_to_roll_back_to_is_a_409(states):
    rows = _rows(*states)
    with pytest.raises(Conflict, match="nothing to roll back to") as refused:
        versions.rollback(rows, MODEL)
    assert refused.value.code == "nothing_to_roll_back"


def test_a_model_without_rows_is_version_1_in_production():
    assert routing_of([]) == Routing(production=1)
    assert versions.implicit_row(MODEL).state == "production"


# ---- routing -------------------------------------------------------------------------------


def test_production_sends_the_canary_about_its_share_of_distinct_texts():
    routing = Routing(production=1, canary=2, percent=30)
    chosen = [choose_version(text, "production", routing) for text in TEXTS]
    assert set(chosen) == {1, 2}
    assert 0.20 <= chosen.count(2) / len(TEXTS) <= 0.40


def test_the_same_text_always_meets_the_same_version():
    routing = Routing(production=1, canary=2, percent=50)
    for text in TEXTS[:50]:
        first = choose_version(text, "production", routing)
        assert choose_version(text, "production", routing) == first
        assert versions.bucket(text) == versions.bucket(str(text))  # not Python's salted hash


def test_a_larger_share_keeps_the_texts_the_canary_already_had():
    small, large = Routing(1, 2, 10), Routing(1, 2, 40)
    had = {t for t in TEXTS if choose_version(t, "production", small) == 2}
    assert had and all(choose_version(t, "production", large) == 2 for t in had)


def test_without_a_canary_production_keys_meet_production_even_with_candidates():
    routing = Routing(production=3, candidate=4)
    assert {choose_version(t, "production", routing) for t in TEXTS} == {3}


def test_staging_meets_the_canary_else_the_newest_candidate_else_production():
    rows = _rows("archived", "production", "candidate", "candidate")
    assert {choose_version(t, "staging", routing_of(rows)) for t in TEXTS} == {4}
    versions.start_canary(rows, MODEL, 3, 1)
    assert {choose_version(t, "staging", routing_of(rows)) for t in TEXTS} == {3}
    assert {choose_version(t, "staging", routing_of(_rows("production"))) for t in TEXTS} == {1}


# ---- a batch split by version ----------------------------------------------------------------
class FixedVersions:
    def __init__(self, routing: Routing):
        self._routing = routing

    async def routing(self, model: str) -> Routing:
        assert model == MODEL
        return self._routing


def test_a_batch_makes_one_call_per_version_and_each_result_names_its_version():
    client, routing = RecordingTriage(), Routing(production=1, canary=2, percent=30, candidate=3)
    texts = [*TEXTS[:40], "staging's text"]
    environments = [*["production"] * 40, "staging"]
    results = asyncio.run(
        triage_texts(
            client, texts, Metrics(), versions=FixedVersions(routing), environments=environments
        )
    )
    assert sorted(v for v, _ in client.calls) == [1, 2]  # one call each, staging's with canary
    for version, sent in client.calls:
        assert all(
            choose_version(t, e, routing) == version
            for t, e in zip(texts, environments, strict=True)
            if t in sent
        )
    expected = [
        str(choose_version(t, e, routing)) for t, e in zip(texts, environments, strict=True)
    ]
    assert [r.model_version for r in results] == expected  # in the order asked
    assert results[-1].model_version == "2"


def test_without_a_version_store_triage_makes_one_call_that_triton_routes():
    client = RecordingTriage()
    asyncio.run(triage_texts(client, TEXTS[:5], Metrics()))
    assert client.calls == [(None, TEXTS[:5])]
