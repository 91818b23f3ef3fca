"""Racing writers on one job row, on PostgreSQL and SQLite: every status change is a
compare-and-set, so of the racers exactly one wins, the others see the winner, and every job ends
in one terminal state with one terminal event. Each race runs many rounds with real threads
released together."""

from __future__ import annotations

import threading
from functools import partial

from db import jobs
from db import status as st
from db.engine import sessionmaker_for
from db.models import Job, JobEvent

ROUNDS = 50


def _new_job(db_url, tenant, claimed_by=None) -> str:
    with sessionmaker_for(db_url)() as s:
        job = jobs.create_job(s, tenant, {"model": "m", "method": "wanda"}, {})
        s.commit()
        if claimed_by:
            assert jobs.claim(s, job.id, claimed_by, 60)
            s.commit()
        return job.id


def _together(*fns):
    """Run every fn in its own thread, released at once; returns their results (or exceptions)."""
    gate = threading.Barrier(len(fns))
    out = [None] * len(fns)

    def run(i, fn):
        gate.wait()
        try:
            out[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the caller inspects it
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _claim(db_url, job_id) -> bool:
    """What a worker does when it takes a job: claim the row under a lease, commit."""
    with sessionmaker_for(db_url)() as s:
        won = jobs.claim(s, job_id, "w", 60)
        s.commit()
        return won


def _cancel(db_url, job_id):
    """What POST /v1/jobs/{id}/cancel does: read the row, request the cancel, commit."""
    with sessionmaker_for(db_url)() as s:
        job = s.get(Job, job_id)
        try:
            jobs.request_cancel(s, job)
        except jobs.IllegalTransition:
            return "409"
        s.commit()
        return job.status


def _statuses(db_url, job_id) -> tuple[str, list[str]]:
    with sessionmaker_for(db_url)() as s:
        events = s.query(JobEvent).filter_by(job_id=job_id, type="status").order_by(JobEvent.id).all()
        return s.get(Job, job_id).status, [e.data["status"] for e in events]


def _settings(db_url, tmp_path):
    from db.settings import Settings

    return Settings(home=tmp_path, database_url=db_url, enqueue=False)


def test_cancel_racing_the_workers_finish_never_leaves_a_job_stuck(db_url, tenant, tmp_path):
    from worker.runner import Runner

    settings = _settings(db_url, tmp_path)
    outcomes = set()
    for _ in range(ROUNDS):
        job_id = _new_job(db_url, tenant, claimed_by="w")
        runner = Runner(settings, job_id, "w")
        finished, cancelled = _together(partial(runner._finish, st.SUCCEEDED, result={"sparsity_achieved": 0.5}),
                                        partial(_cancel, db_url, job_id))
        assert not isinstance(finished, Exception), finished
        status, events = _statuses(db_url, job_id)
        assert status == st.SUCCEEDED  # the work was done: the cancel either lost or came too late
        assert sum(e in st.TERMINAL for e in events) == 1 and events[-1] == st.SUCCEEDED
        assert cancelled in ("409", st.CANCELLING), cancelled
        outcomes.add(cancelled)
    assert outcomes  # every round produced one of the two legal orders


def test_concurrent_cancels_write_one_event(db_url, tenant):
    for _ in range(ROUNDS // 5):
        job_id = _new_job(db_url, tenant, claimed_by="w")
        answers = _together(*[partial(_cancel, db_url, job_id)] * 20)
        assert set(answers) == {st.CANCELLING}, answers
        status, events = _statuses(db_url, job_id)
        assert status == st.CANCELLING and events.count(st.CANCELLING) == 1


def test_cancel_racing_the_claim_has_one_winner(db_url, tenant):
    seen = set()
    for _ in range(ROUNDS):
        job_id = _new_job(db_url, tenant)
        claimed, cancelled = _together(partial(_claim, db_url, job_id), partial(_cancel, db_url, job_id))
        status, events = _statuses(db_url, job_id)
        with sessionmaker_for(db_url)() as s:
            owner = s.get(Job, job_id).lease_owner
        if claimed is True:  # the worker holds it: the cancel must wait for the worker
            assert (status, cancelled, owner) == (st.CANCELLING, st.CANCELLING, "w")
            assert events == [st.QUEUED, st.RUNNING, st.CANCELLING]
        else:  # cancelled while queued: no worker may hold it
            assert (status, cancelled, owner) == (st.CANCELLED, st.CANCELLED, None)
            assert events == [st.QUEUED, st.CANCELLED]
        seen.add(status)
    assert seen


def test_reaper_racing_the_workers_finish(db_url, tenant, tmp_path):
    """A lease that lapses just as the worker records its outcome: one of them wins."""
    from datetime import timedelta

    from sqlalchemy import update

    from db.models import utcnow
    from worker.reaper import reap_lapsed
    from worker.runner import LeaseLost, Runner

    settings = _settings(db_url, tmp_path)
    for _ in range(ROUNDS // 2):
        job_id = _new_job(db_url, tenant, claimed_by="w")
        with sessionmaker_for(db_url)() as s:
            s.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
            s.commit()
        finished, _ = _together(partial(Runner(settings, job_id, "w")._finish, st.SUCCEEDED, result={}),
                                partial(reap_lapsed, settings))
        status, events = _statuses(db_url, job_id)
        if isinstance(finished, LeaseLost):
            assert status == st.QUEUED and events[-1] == st.QUEUED
        else:
            assert finished is None and status == st.SUCCEEDED
        assert sum(e in st.TERMINAL for e in events) <= 1
