"""Resource bodies shared by the API (responses) and the workers (webhook payloads), built straight
from table rows so both say exactly the same thing about a job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .models import Job


def ts(value: datetime | None) -> str | None:
    """UTC timestamps as RFC 3339 with a Z (SQLite hands them back without a zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def job(j: Job) -> dict[str, Any]:
    """The job resource (api/schemas.py JobOut)."""
    return {"id": j.id, "object": "pruning_job", "status": j.status, "model": j.model, "method": j.method,
            "spec": j.spec, "metadata": j.metadata_ or {}, "progress": j.progress or {}, "result": j.result,
            "error": {"code": j.error_code, "message": j.error_message or ""} if j.error_code else None,
            "attempt": j.attempt, "created_at": ts(j.created_at), "started_at": ts(j.started_at),
            "finished_at": ts(j.finished_at), "schedule_id": j.schedule_id, "scheduled_for": ts(j.scheduled_for)}
