"""Response bodies built straight from table rows, encoded with orjson and sent as is.

The schemas in `schemas.py` still document every response (OpenAPI) and the schemathesis suite
checks that these bodies conform to them; returning a ready Response skips FastAPI's second
validation and serialization pass, which cost more CPU than the database work of a GET."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import orjson
from starlette.responses import Response

from db.models import Job


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ts(value: Optional[datetime]) -> Optional[str]:
    """UTC timestamps as RFC 3339 with a Z (SQLite hands them back without a zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat().replace("+00:00", "Z")


def job(j: Job) -> dict[str, Any]:
    """The job resource (schemas.JobOut)."""
    return {"id": j.id, "object": "pruning_job", "status": j.status, "model": j.model, "method": j.method,
            "spec": j.spec, "metadata": j.metadata_ or {}, "progress": j.progress or {}, "result": j.result,
            "error": {"code": j.error_code, "message": j.error_message or ""} if j.error_code else None,
            "attempt": j.attempt, "created_at": ts(j.created_at), "started_at": ts(j.started_at),
            "finished_at": ts(j.finished_at), "schedule_id": j.schedule_id, "scheduled_for": ts(j.scheduled_for)}


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """The list envelope (schemas.Page)."""
    return {"object": "list", "data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}
