"""Recurring jobs (nightly compression and the like), fired by whichever worker supervisor looks
first. Firing is duplicate-proof without a lock service: a slot becomes a job only through an
INSERT guarded by the unique (schedule_id, scheduled_for) pair, and a schedule advances only by a
conditional UPDATE on the next_fire_at it was read with. Any number of tickers may run.

Misfires (no ticker ran at the slot: all workers down, say): "run_latest" fires once, for the
latest missed slot, and skips the older ones; "skip" fires a missed slot only within
MISFIRE_GRACE of its time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import jobs
from .models import Schedule, utcnow

log = logging.getLogger(__name__)
MISFIRE_POLICIES = ("run_latest", "skip")
MISFIRE_GRACE = timedelta(minutes=5)


def check_cron(cron: str) -> str:
    """Return `cron`, or raise ValueError with a readable reason."""
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a 5-field cron expression (minute hour day month weekday)")
    try:  # valid fields can still name no date at all (February 30th)
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{cron!r} never fires (no date matches it)") from None
    return cron


def check_timezone(tz: str) -> str:
    """Return `tz`, or raise ValueError when it is not an IANA time zone name."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)") from None
    return tz


def _local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(ZoneInfo(tz))


def next_slot(cron: str, tz: str, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC (cron read as wall-clock time in `tz`)."""
    return croniter(cron, _local(after, tz)).get_next(datetime).astimezone(UTC)


def latest_slot(cron: str, tz: str, at: datetime) -> datetime:
    """The last slot at or before `at`, in UTC."""
    return croniter(cron, _local(at + timedelta(seconds=1), tz)).get_prev(datetime).astimezone(UTC)


def _fire_one(s: Session, sch: Schedule, now: datetime) -> str | None:
    """Advance `sch` past `now` and create the job of its due slot. Returns the new job id, or
    None when another ticker got there first or the misfire policy skips the slot."""
    slot = latest_slot(sch.cron, sch.timezone, now)
    advanced = s.execute(
        update(Schedule).where(Schedule.id == sch.id, Schedule.next_fire_at == sch.next_fire_at)
        .values(next_fire_at=next_slot(sch.cron, sch.timezone, now), updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if not advanced:
        return None  # another ticker advanced it
    if sch.misfire == "skip" and now - slot > MISFIRE_GRACE:
        log.warning("schedule %s: slot %s missed by %s, skipped", sch.id, slot, now - slot)
        return None
    job = jobs.create_job(s, sch.tenant_id, sch.spec, sch.metadata_ or {}, schedule=(sch.id, slot))
    s.execute(update(Schedule).where(Schedule.id == sch.id).values(last_fired_at=now, last_job_id=job.id)
              .execution_options(synchronize_session=False))
    return job.id


def fire_due(s: Session, now: datetime | None = None) -> list[str]:
    """Create the jobs of every enabled schedule whose next slot has come; commits. Returns the
    new job ids for the caller to enqueue (after the commit, never before)."""
    now = now or utcnow()
    due = list(s.scalars(select(Schedule).where(Schedule.enabled.is_(True), Schedule.next_fire_at <= now)))
    created = []
    for sch in due:  # one transaction each: a conflict on one schedule loses nothing of another
        try:
            job_id = _fire_one(s, sch, now)
            s.commit()
        except IntegrityError:  # this slot already has its job (a racing ticker)
            s.rollback()
            continue
        if job_id is not None:
            created.append(job_id)
    return created
