from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import text

from db.broker import celery_app

from ..deps import session, settings
from ..problems import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz")
def readyz(s=Depends(session), cfg=Depends(settings)):
    """Ready when the database answers and the broker accepts a connection."""
    checks = {}
    try:
        s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001
        checks["database"] = "unreachable"
    try:
        with celery_app(cfg).connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception:  # noqa: BLE001
        checks["broker"] = "unreachable"
    if any(v != "ok" for v in checks.values()):
        raise Problem(503, "not-ready", "Not ready", ", ".join(f"{k} {v}" for k, v in checks.items()), checks=checks)
    return {"status": "ok", "checks": checks}
