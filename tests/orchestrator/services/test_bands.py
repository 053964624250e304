"""A triage's confidence band: read from the bands of the version that predicted, else version
1's, else none; stored on the ticket and filtered on (the review queue is band=low)."""

import pytest

from contracts.bands import BandThresholds, bands_file
from orchestrator.db.session import make_engine, session_factory
from orchestrator.schemas.tickets import TicketCreate
from orchestrator.services import keys, tickets
from orchestrator.services.bands import confidence_band, thresholds_of
from orchestrator.services.triage import TriageResult


@pytest.fixture
def repository(tmp_path):
    thresholds_of.cache_clear()
    BandThresholds(high_from=0.9, low_below=0.5).write(tmp_path / bands_file(1), {})
    BandThresholds(high_from=0.8, low_below=0.3).write(tmp_path / bands_file(3), {})
    yield tmp_path
    thresholds_of.cache_clear()


def test_the_band_comes_from_the_version_that_predicted_else_version_one(repository, tmp_path):
    assert confidence_band(0.85, "1", repository) == "medium"
    assert confidence_band(0.85, "3", repository) == "high"  # its own bands
    assert confidence_band(0.85, "2", repository) == "medium"  # none of its own: version 1's
    assert confidence_band(0.4, "3", repository) == "medium"
    assert confidence_band(0.4, "1", repository) == "low"
    assert confidence_band(None, "1", repository) is None  # an agent set the intent
    assert confidence_band(0.99, "1", tmp_path / "empty") is None  # no bands written yet


def test_the_review_queue_is_the_tickets_banded_low(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'bands.db'}")
    sessions = session_factory(engine)
    with sessions() as session:
        tenant = keys.create_tenant(session=session, name="acme").id
        for band in ("low", "high", "low", None):
            ticket = tickets.create_ticket(
                session, tenant, TicketCreate(subject="s", body="my card is blocked")
            ).ticket
            triage = TriageResult("card_blocked", 0.5, "cards", "incident", "high", (), "1", band)
            tickets.store_triage(ticket, triage)
            session.commit()
        found, _ = tickets.list_tickets(
            session, tenant, status=None, department=None, priority=None, limit=50,
            cursor=None, band="low",
        )  # fmt: skip
        assert [t.confidence_band for t in found] == ["low", "low"]
        assert tickets.public(found[0]).triage.confidence_band == "low"
    engine.dispose()
