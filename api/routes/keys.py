"""API keys of the caller's tenant (admin scope): list them and revoke one. The secret is never
shown again; a revoked key answers 401 from the next request on (this process forgets it at
once, other API processes within deps.KEY_CACHE_SECONDS)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from db import keys
from db.models import ApiKey

from .. import deps, wire
from ..deps import Principal, require, session
from ..problems import Problem
from ..schemas import ApiKeyOut, Page

router = APIRouter(tags=["api keys"])


def _out(k: ApiKey) -> dict:
    return {"id": k.id, "object": "api_key", "prefix": k.prefix, "scopes": list(k.scopes),
            "created_at": wire.ts(k.created_at), "revoked_at": wire.ts(k.revoked_at) if k.revoked_at else None}


@router.get("/v1/api_keys", response_model=Page)
def list_keys(s=Depends(session), p: Principal = Depends(require("admin"))):
    rows = s.scalars(select(ApiKey).where(ApiKey.tenant_id == p.tenant_id).order_by(ApiKey.created_at, ApiKey.id))
    return wire.JSON(wire.page([_out(k) for k in rows], False))


@router.delete("/v1/api_keys/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: str, s=Depends(session), p: Principal = Depends(require("admin"))):
    record = s.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == p.tenant_id))
    if record is None:
        raise Problem(404, "not-found", "API key not found", f"no API key {key_id}")
    if record.revoked_at is None:
        keys.revoke(s, record)
        s.commit()
    deps.forget(record.prefix)
    return wire.JSON(_out(record))
