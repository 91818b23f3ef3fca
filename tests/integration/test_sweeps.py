"""The worker supervisor's sweeps on PostgreSQL and SQLite (the embedded mode): lapsed leases,
schedules, re-enqueueing without multiplying messages, freeing dead attempts' disk, and each
sweep on its own when another fails."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import update

from db import broker, jobs
from db import status as st
from db.engine import sessionmaker_for
from db.models import Job, Schedule, utcnow
from db.settings import Settings


@pytest.fixture
def settings(db_url, tmp_path):
    # a private queue on the shared Redis for PostgreSQL; the embedded broker for SQLite
    redis = "redis://127.0.0.1:6379/13" if db_url.startswith("postgresql") else None
    return Settings(home=tmp_path, database_url=db_url, broker_url=redis, artifacts_dir=tmp_path / "artifacts",
                    task_queue=f"sweep-{secrets.token_hex(4)}", requeue_after_seconds=60)


def _job(db_url, tenant, **values) -> str:
    with sessionmaker_for(db_url)() as s:
        job = jobs.create_job(s, tenant, {"model": "m", "method": "wanda"}, {})
        s.commit()
        if values:
            s.execute(update(Job).where(Job.id == job.id).values(**values))
            s.commit()
        return job.id


def _status(db_url, job_id) -> Job:
    with sessionmaker_for(db_url)() as s:
        return s.get(Job, job_id)


def test_lapsed_leases_are_requeued_then_failed(settings, db_url, tenant):
    from worker.reaper import reap_lapsed

    past = utcnow() - timedelta(seconds=5)
    retry = _job(db_url, tenant, status=st.RUNNING, lease_owner="gone", lease_until=past, attempt=1)
    last = _job(db_url, tenant, status=st.EVALUATING, lease_owner="gone", lease_until=past, attempt=3)
    stopping = _job(db_url, tenant, status=st.CANCELLING, lease_owner="gone", lease_until=past, attempt=1)
    alive = _job(db_url, tenant, status=st.RUNNING, lease_owner="here", lease_until=utcnow() + timedelta(minutes=1))
    assert reap_lapsed(settings) == [retry]
    assert (_status(db_url, retry).status, _status(db_url, retry).lease_owner) == (st.QUEUED, None)
    assert _status(db_url, last).error_code == "worker-lost"
    assert _status(db_url, stopping).status == st.CANCELLED
    assert _status(db_url, alive).status == st.RUNNING
    assert retry in broker.held_job_ids(settings)


def test_due_schedules_fire(settings, db_url, tenant):
    from worker.reaper import fire_schedules

    with sessionmaker_for(db_url)() as s:
        sch = Schedule(tenant_id=tenant, name="nightly", cron="* * * * *", spec={"model": "m", "method": "wanda"},
                       next_fire_at=utcnow() - timedelta(seconds=1))
        s.add(sch)
        s.commit()
        sch_id = sch.id
    # the session's database may hold other tests' schedules: look at this one's jobs only
    mine = [j for j in fire_schedules(settings) if _status(db_url, j).schedule_id == sch_id]
    assert len(mine) == 1
    assert not [j for j in fire_schedules(settings) if _status(db_url, j).schedule_id == sch_id]  # fires once


def test_a_failing_sweep_stops_none_of_the_others(settings, db_url, tenant):
    from worker.convert import work_dir
    from worker.reaper import sweep

    with sessionmaker_for(db_url)() as s:  # a schedule row no cron parser accepts
        broken = Schedule(tenant_id=tenant, name="broken", cron="not a cron", spec={},
                          next_fire_at=utcnow() - timedelta(seconds=1))
        s.add(broken)
        s.commit()
    try:
        done = _job(db_url, tenant, status=st.SUCCEEDED)
        leftover = work_dir(settings, done, 1)
        leftover.mkdir(parents=True)
        failed = sweep(settings)
        assert list(failed) == ["fire_schedules"]
        assert not leftover.exists()  # the sweep after the failing one still ran
    finally:  # the database outlives this test: leave no row that breaks other tests' sweeps
        with sessionmaker_for(db_url)() as s:
            s.delete(s.get(Schedule, broken.id))
            s.commit()


def test_requeue_sends_only_what_the_broker_lost(settings, db_url, tenant):
    """A long queue (a busy worker) must not get a copy of every job each sweep; a broker that
    forgot its messages gets each lost job back once."""
    from worker.reaper import ring_again

    ids = [_job(db_url, tenant) for _ in range(3)]
    for job_id in ids:
        broker.enqueue(settings, job_id)
    old = utcnow() - timedelta(minutes=5)
    with sessionmaker_for(db_url)() as s:
        s.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=old))
        s.commit()
    for _ in range(3):
        assert ring_again(settings) == []
    assert sorted(_messages(settings)) == sorted(ids)
    _forget_messages(settings)  # the broker restarted without persistence
    with sessionmaker_for(db_url)() as s:
        s.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=old))
        s.commit()
    assert sorted(ring_again(settings)) == sorted(ids)
    assert ring_again(settings) == []  # just enqueued: not due again
    assert sorted(_messages(settings)) == sorted(ids)
    assert _status(db_url, ids[0]).enqueued_at > old


def _messages(settings) -> list[str]:
    """Every job id in the queue, with repeats (held_job_ids is a set)."""
    if settings.broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(settings.broker)
        return [broker._job_id(raw) for raw in client.lrange(settings.task_queue, 0, -1)]
    folder = settings.home / "broker" / "queue"
    return [broker._job_id(p.read_bytes()) for p in folder.glob(f"*.{settings.task_queue}.msg")]


def _forget_messages(settings) -> None:
    if settings.broker.startswith("redis"):
        import redis

        redis.Redis.from_url(settings.broker).delete(settings.task_queue)
    else:
        for p in (settings.home / "broker" / "queue").glob(f"*.{settings.task_queue}.msg"):
            p.unlink()


def test_dead_attempts_disk_is_freed(settings, db_url, tenant):
    """A worker SIGKILLed mid-publish leaves its work directory and the store's staging directory
    behind; the sweep removes those of attempts no worker holds, and keeps the live attempt's."""
    from worker.convert import work_dir
    from worker.reaper import free_dead_attempts

    live = _job(db_url, tenant, status=st.RUNNING, lease_owner="here", attempt=2,
                lease_until=utcnow() + timedelta(minutes=1))
    finished = _job(db_url, tenant, status=st.FAILED, attempt=1)
    dead = [work_dir(settings, live, 1), work_dir(settings, finished, 1), work_dir(settings, "pj_gone", 1),
            settings.artifacts / "jobs" / f".{finished}.staging-abc123"]
    kept = [work_dir(settings, live, 2), settings.artifacts / "jobs" / f".{live}.staging-def456",
            settings.artifacts / "jobs" / finished]
    for path in dead + kept:
        (path / "model").mkdir(parents=True)
        (path / "model" / "weights.bin").write_bytes(b"x" * 1024)
    removed = free_dead_attempts(settings)
    assert sorted(removed) == sorted(str(p) for p in dead)
    assert not any(p.exists() for p in dead) and all(p.exists() for p in kept)
