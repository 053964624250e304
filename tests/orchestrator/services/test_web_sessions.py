"""The workspace's sign-ins on a real database: a token finds its key, and stops finding it
once signed out, expired, or its key revoked; only the token's digest is stored."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from orchestrator.api.keycache import Caller
from orchestrator.db.models import ApiKey, WebSession, utcnow
from orchestrator.db.session import make_engine, session_factory
from orchestrator.services import keys
from orchestrator.services.web_sessions import close_session, find_session, open_session


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'web.db'}")
    factory = session_factory(engine)
    yield factory
    engine.dispose()


def _agent(session) -> Caller:
    keys.ensure_bootstrap_key(session=session, key="sk-admin")
    tenant = keys.platform_tenant(session)
    key, _ = keys.create_key(
        session=session, tenant_id=tenant.id, scopes=["tickets:read", "platform"]
    )
    return Caller(key.id, key.tenant_id, frozenset(key.scope_set))


def test_a_token_finds_its_key_until_signed_out(sessions):
    with sessions() as session:
        agent = _agent(session)
        token, csrf = open_session(session, agent, hours=1)
        assert token not in {row.digest for row in session.scalars(select(WebSession))}
        found = find_session(session, token)
        assert found.caller.id == agent.id and found.csrf_token == csrf
        assert found.caller.platform  # a key of the platform tenant keeps its `platform`
        assert find_session(session, token + "x") is None and find_session(session, "") is None
        close_session(session, token)
        assert find_session(session, token) is None


def test_an_expired_session_or_a_revoked_key_finds_nothing(sessions):
    with sessions() as session:
        agent = _agent(session)
        expired, _ = open_session(session, agent, hours=1)
        row = session.scalars(select(WebSession)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
        assert find_session(session, expired) is None
        live, _ = open_session(session, agent, hours=1)  # also deletes the expired row
        assert session.scalars(select(WebSession)).all() == [
            session.scalars(select(WebSession)).one()
        ]
        session.get(ApiKey, agent.id).revoked_at = utcnow()
        session.commit()
        assert find_session(session, live) is None
