"""The worker registry: each worker process keeps one row fresh by heartbeat (worker/registry.py);
a row whose heartbeat is older than `worker_stale_seconds` belongs to a dead worker. Listing shows
only live rows; the reaper deletes long-dead ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .models import Worker, utcnow

DEAD_ROWS_KEPT_FOR = 10  # × the stale time: a dead worker's row lingers this long for a post-mortem


def register(session: Session, info: dict[str, Any]) -> None:
    """Insert or refresh this process's row (a restarted pid on the same host takes its place)."""
    now = utcnow()
    row = session.get(Worker, info["id"])
    if row is None:
        session.add(Worker(**info, started_at=now, heartbeat_at=now))
    else:
        for key, value in info.items():
            setattr(row, key, value)
        row.started_at = row.heartbeat_at = now
        row.current_job_id = None
    session.commit()


def beat(session: Session, worker_id: str, current_job_id: str | None) -> bool:
    """Refresh the row; False when it is gone (deleted as dead meanwhile: register again)."""
    done = session.execute(update(Worker).where(Worker.id == worker_id)
                           .values(heartbeat_at=utcnow(), current_job_id=current_job_id)).rowcount
    session.commit()
    return bool(done)


def remove(session: Session, worker_id: str) -> None:
    session.execute(delete(Worker).where(Worker.id == worker_id))
    session.commit()


def live(session: Session, stale_seconds: float) -> list[Worker]:
    since = utcnow() - timedelta(seconds=stale_seconds)
    return list(session.scalars(select(Worker).where(Worker.heartbeat_at >= since).order_by(Worker.host, Worker.name,
                                                                                             Worker.pid)))


def forget_dead(session: Session, stale_seconds: float) -> int:
    before = utcnow() - timedelta(seconds=stale_seconds * DEAD_ROWS_KEPT_FOR)
    gone = session.execute(delete(Worker).where(Worker.heartbeat_at < before)).rowcount
    session.commit()
    return gone
