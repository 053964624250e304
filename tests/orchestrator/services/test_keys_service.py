"""The bootstrap key and the platform tenant, on the database itself."""

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from orchestrator.db.migrate import alembic_config
from orchestrator.db.models import ApiKey, Tenant
from orchestrator.db.session import make_engine, session_factory
from orchestrator.services import keys
from orchestrator.services.security import SCOPES, digest


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    yield session_factory(engine)
    engine.dispose()


def _active(session) -> set[str]:
    rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))
    return {r.digest for r in rows}


def test_a_new_bootstrap_key_revokes_the_earlier_ones_and_a_restart_changes_nothing(sessions):
    with sessions() as session:
        assert keys.ensure_bootstrap_key(session=session, key="sk-a") == []
        tenant = keys.platform_tenant(session)
        record, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["chat"])
        assert keys.ensure_bootstrap_key(session=session, key="sk-a") == []
        assert len(keys.ensure_bootstrap_key(session=session, key="sk-b")) == 1
        assert _active(session) == {digest("sk-b"), record.digest}  # hand-made keys stay
        assert keys.ensure_bootstrap_key(session=session, key="sk-b") == []
        bootstrap = session.scalar(select(ApiKey).where(ApiKey.digest == digest("sk-b")))
        assert bootstrap.scope_set == set(SCOPES) and bootstrap.origin == "bootstrap"


def test_the_platform_tenant_is_found_by_its_flag_not_its_name(sessions):
    with sessions() as session:
        # Before the fix, a customer tenant named "admin" received the bootstrap key.
        customer = Tenant(name="admin", webhook_secret="s")
        session.add(customer)
        session.commit()
        keys.ensure_bootstrap_key(session=session, key="sk-a")
        record = session.scalar(select(ApiKey).where(ApiKey.digest == digest("sk-a")))
        assert record.tenant_id != customer.id
        assert session.get(Tenant, record.tenant_id).is_platform


def test_the_bootstrap_key_cannot_be_a_customer_tenant_key(sessions):
    with sessions() as session:
        customer = keys.create_tenant(session=session, name="acme")
        keys.create_key(session=session, tenant_id=customer.id, scopes=["chat"], key="sk-x")
        with pytest.raises(keys.BootstrapKeyConflict):
            keys.ensure_bootstrap_key(session=session, key="sk-x")


def test_platform_scope_only_for_the_platform_tenant(sessions):
    with sessions() as session:
        customer = keys.create_tenant(session=session, name="acme")
        with pytest.raises(keys.NotAllowed):
            keys.create_key(session=session, tenant_id=customer.id, scopes=["platform"])
        keys.ensure_bootstrap_key(session=session, key="sk-a")
        platform = keys.platform_tenant(session)
        assert keys.create_key(session=session, tenant_id=platform.id, scopes=["platform"])


def test_the_migration_marks_the_earlier_admin_tenant_and_its_bootstrap_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO tenants (id, name, created_at) VALUES (1, 'admin', '2026-01-01')")
        )
        for digest_, scopes in (("old", "admin chat tickets:read tickets:write"), ("x", "chat")):
            connection.execute(
                text(
                    "INSERT INTO api_keys (tenant_id, digest, scopes, created_at)"
                    " VALUES (1, :digest, :scopes, '2026-01-01')"
                ),
                {"digest": digest_, "scopes": scopes},
            )
    engine.dispose()
    sessions = session_factory(make_engine(url))  # migrates to head
    with sessions() as session:
        assert keys.platform_tenant(session).id == 1
        origins = dict(session.execute(select(ApiKey.digest, ApiKey.origin)).all())
        assert origins == {"old": "bootstrap", "x": "api"}
        assert keys.ensure_bootstrap_key(session=session, key="sk-new") == [1]  # old revoked
