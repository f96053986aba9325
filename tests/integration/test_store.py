"""The scheduler's store on real SQLite and real PostgreSQL: the same tests on both."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import inspect

from ftlab.v1 import events_pb2, job_pb2, job_service_pb2
from services.scheduler.hub import EventHub
from services.scheduler.jobs import JobManager, state_event
from services.scheduler.store import db
from services.scheduler.store.repository import JobStore

CONFIG = {"base_model": "m", "dataset": {"uri": "d.jsonl"}}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'ftlab.db'}")
    else:
        url, schema = request.getfixturevalue("pg_schema")
        engine = db.make_engine(url, schema=schema)
    db.upgrade(engine)
    yield JobStore(engine)
    engine.dispose()


@pytest.fixture
def manager(store):
    return JobManager(store, EventHub())


def create(manager, owner="alice", **kwargs):
    from ftlab.config import config_from_dict

    request = job_service_pb2.CreateJobRequest(config=config_from_dict(CONFIG), **kwargs)
    import asyncio

    from services.common.auth import Caller

    return asyncio.run(manager.create(Caller(owner), request))


def test_migrations_create_the_schema(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"jobs", "job_events", "checkpoints", "attempts", "alembic_version"} <= tables


def test_sqlite_uses_wal(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_repeated_request_id_makes_one_job(manager, store):
    first = create(manager, request_id="req-1")
    again = create(manager, request_id="req-1")
    other_user = create(manager, owner="bob", request_id="req-1")
    assert first.id == again.id
    assert other_user.id != first.id
    rows, _ = store.list_jobs(owner="alice", states=[], page_size=10, page_token="")
    assert [r.id for r in rows] == [first.id]


def test_concurrent_creates_with_one_request_id_make_one_job(manager, store):
    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(lambda _: create(manager, request_id="same"), range(8)))
    assert len({j.id for j in jobs}) == 1
    assert len(store.list_jobs(owner="alice", states=[], page_size=100, page_token="")[0]) == 1


def test_created_job_is_queued_with_its_first_event(manager, store):
    job = create(manager, display_name="x", priority=3)
    assert job.state == job_pb2.JOB_STATE_QUEUED
    events = store.events_after(job.id, 0, 10)
    assert [e.sequence for e in events] == [1]
    assert events[0].state_changed.to_state == job_pb2.JOB_STATE_QUEUED


def test_concurrent_appends_get_dense_sequences(manager, store):
    job = create(manager)

    def append(i):
        store.update(job.id, lambda r, s: [job_pb2.JobEvent(log=events_pb2.LogLine(text=f"line {i}"))])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, range(64)))
    events = store.events_after(job.id, 0, 1000)
    assert [e.sequence for e in events] == list(range(1, 66))
    assert sorted(e.log.text for e in events[1:]) == sorted(f"line {i}" for i in range(64))
    assert store.get_job(job.id).last_sequence == 65


def test_list_pages_newest_first_and_filters(manager, store):
    ids = [create(manager).id for _ in range(5)]
    create(manager, owner="bob")
    seen, token = [], ""
    while True:
        rows, token = store.list_jobs(owner="alice", states=[], page_size=2, page_token=token)
        seen += [r.id for r in rows]
        if not token:
            break
    assert seen == list(reversed(ids))
    store.update(ids[0], lambda r, s: [state_event(r, "JOB_STATE_CANCELLED", "test")])
    rows, _ = store.list_jobs(owner="alice", states=["JOB_STATE_CANCELLED"], page_size=10, page_token="")
    assert [r.id for r in rows] == [ids[0]]


def test_claim_takes_priority_then_age(manager, store):
    low = create(manager, priority=0)
    high = create(manager, priority=5)
    older_low = low
    newer_low = create(manager, priority=0)
    order = []
    for _ in range(3):
        row, _ = store.claim_next(lambda r, s: [state_event(r, "JOB_STATE_STARTING", "test")])
        order.append(row.id)
    assert order == [high.id, older_low.id, newer_low.id]
    assert store.claim_next(lambda r, s: []) is None


def test_parallel_claims_never_hand_out_a_job_twice(manager, store):
    ids = {create(manager).id for _ in range(12)}
    claimed, lock = [], threading.Lock()

    def claimer():
        while True:
            got = store.claim_next(lambda r, s: [state_event(r, "JOB_STATE_STARTING", "test")])
            if got is None:
                return
            with lock:
                claimed.append(got[0].id)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_claim_skips_owners_at_their_running_limit(manager, store):
    from services.scheduler import states

    a1, a2 = create(manager, owner="alice", priority=9), create(manager, owner="alice", priority=9)
    b1 = create(manager, owner="bob")

    def claim():
        got = store.claim_next(lambda r, s: [state_event(r, "JOB_STATE_STARTING", "test")],
                               active_states=states.ACTIVE, max_active_per_owner=1)
        return got[0].id if got else None

    assert claim() == a1.id
    assert claim() == b1.id, "alice is at her limit, so bob's lower-priority job goes first"
    assert claim() is None
    store.update(a1.id, lambda r, s: [state_event(r, "JOB_STATE_CANCELLED", "test")])
    assert claim() == a2.id


def test_models_match_the_migrations(store):
    """Every column the ORM maps was created by an Alembic migration (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from services.scheduler.store.models import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
