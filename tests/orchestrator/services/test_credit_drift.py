"""The credit drift pass the worker runs: every tenant with enough scorings compared with the
production version's reference, its gauges set; on the database itself (SQLite, no Triton)."""

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge

from contracts.credit import FEATURES, bin_shares, credit_reference_file, decile_edges
from orchestrator.db.models import CreditScore
from orchestrator.db.session import make_engine, session_factory
from orchestrator.services import keys
from orchestrator.services.credit_drift import MIN_WINDOW, credit_pass


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'credit.db'}")
    yield session_factory(engine)
    engine.dispose()


def _applicants(rng, n: int, shift: int = 0) -> list[dict]:
    return [{name: int(rng.integers(0, 10)) + shift for name in FEATURES} for _ in range(n)]


def _reference(repository, version: int, applicants: list[dict]) -> None:
    columns = {name: np.array([a[name] for a in applicants]) for name in FEATURES}
    columns["probability"] = np.linspace(0.01, 0.9, len(applicants))
    reference = {}
    for name, values in columns.items():
        edges = decile_edges(values)
        reference[name] = {"edges": edges.tolist(), "shares": bin_shares(values, edges).tolist()}
    path = repository / credit_reference_file(version)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(reference))


def _scored(sessions, name: str, applicants: list[dict]) -> None:
    with sessions() as session:
        tenant = keys.create_tenant(session=session, name=name)
        key, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["credit:score"])
        for i, applicant in enumerate(applicants):
            session.add(CreditScore(
                tenant_id=tenant.id, key_id=key.id, applicant=applicant, model_version="2",
                probability_of_default=float(np.linspace(0.01, 0.9, len(applicants))[i]),
                score=600, decision="review", reasons=[],
            ))  # fmt: skip
        session.commit()


def test_each_tenant_with_enough_scorings_is_compared_and_its_gauges_set(sessions, tmp_path):
    rng = np.random.default_rng(0)
    _reference(tmp_path, 2, _applicants(rng, 2000))
    _scored(sessions, "steady", _applicants(rng, 300))
    _scored(sessions, "shifted", _applicants(rng, 300, shift=5))
    _scored(sessions, "new", _applicants(rng, MIN_WINDOW - 1))
    gauge = Gauge("psi", "", ("tenant", "feature"), registry=CollectorRegistry())

    with sessions() as session:
        reports = credit_pass(session, tmp_path, 2, gauge)
        assert credit_pass(session, tmp_path, 3, gauge) == {}  # no reference for version 3

    assert set(reports) == {"steady", "shifted"}  # "new" has too few scorings
    assert reports["steady"]["level"] == "ok" and reports["shifted"]["level"] == "critical"
    assert gauge.labels(tenant="shifted", feature="age").collect()[0].samples[0].value > 0.25
    assert gauge.labels(tenant="steady", feature="age").collect()[0].samples[0].value < 0.1
