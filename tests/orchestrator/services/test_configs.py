"""Configurations on the database itself: concurrent writers get distinct versions, and the
store's cache serves until its entry expires or a write here clears it."""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update

from orchestrator.api.keycache import Caller
from orchestrator.db.models import ConfigVersion
from orchestrator.db.session import session_factory
from orchestrator.environments import Environment
from orchestrator.schemas.configs import ChatConfig
from orchestrator.services import configs, keys
from orchestrator.settings import OrchestratorSettings
from tests.utils.jobs import database_engine

STAGING = Environment.staging


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path):
    engine = database_engine(request.param, tmp_path)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def author(sessions) -> Caller:
    with sessions() as session:
        tenant = keys.create_tenant(session=session, name="platform", platform=True)
        key, _ = keys.create_key(session=session, tenant_id=tenant.id, scopes=["platform"])
        return Caller(key.id, tenant.id, frozenset({"platform"}))


def _put(sessions, author: Caller, body: dict, environment=STAGING) -> int:
    with sessions() as session:
        made = configs.create_version(
            session=session, name="chat", environment=environment, body=body, caller=author
        )
    return made.version


def _store(sessions, ttl_s: float) -> configs.ConfigStore:
    return configs.ConfigStore(sessions, OrchestratorSettings(config_cache_s=ttl_s))


def test_concurrent_writers_get_distinct_versions_and_the_last_one_is_active(sessions, author):
    def writer(first: int) -> list[int]:
        return [_put(sessions, author, {"temperature": (first + i) / 10}) for i in range(3)]

    with ThreadPoolExecutor(2) as pool:
        made = sorted(v for versions in pool.map(writer, (0, 3)) for v in versions)
    assert made == [1, 2, 3, 4, 5, 6]
    with sessions() as session:
        assert configs.current(session=session, name="chat", environment=STAGING).version == 6


def test_the_cache_serves_until_its_entry_expires_or_it_is_cleared(sessions, author):
    cached, short = _store(sessions, 60), _store(sessions, 0.2)
    assert asyncio.run(cached.chat("staging")) == ChatConfig()
    assert asyncio.run(short.chat("staging")) == ChatConfig()
    _put(sessions, author, {"temperature": 0.1})  # as another replica would
    assert asyncio.run(cached.chat("staging")).temperature == 0.7  # still its entry
    time.sleep(0.25)
    assert asyncio.run(short.chat("staging")).temperature == 0.1
    cached.invalidate()
    assert asyncio.run(cached.chat("staging")).temperature == 0.1
    assert asyncio.run(cached.chat("production")) == ChatConfig()  # per environment


def test_a_read_that_began_before_a_write_here_is_not_kept(sessions, author):
    store = _store(sessions, 60)
    read = store._read

    def read_then_written(*args):
        answer = read(*args)  # the defaults ...
        _put(sessions, author, {"temperature": 0.3})
        store.invalidate()  # ... and a PUT lands through this process meanwhile
        return answer

    store._read = read_then_written
    assert asyncio.run(store.chat("staging")) == ChatConfig()
    store._read = read
    assert asyncio.run(store.chat("staging")).temperature == 0.3


def test_a_stored_version_that_no_longer_validates_serves_the_defaults(sessions, author, caplog):
    _put(sessions, author, {"temperature": 0.4})
    with sessions.begin() as session:  # as if the rules had tightened since it was stored
        session.execute(update(ConfigVersion).values(body={"temperature": 9}))
    with caplog.at_level(logging.ERROR):
        assert asyncio.run(_store(sessions, 0).chat("staging")) == ChatConfig()
    assert "no longer validates" in caplog.text
