"""Request dependencies: a database session per request and the authenticated principal."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from db import keys
from db.engine import sessionmaker_for
from db.settings import Settings

from .problems import Problem


def settings(request: Request) -> Settings:
    return request.app.state.settings


def session(request: Request) -> Iterator[Session]:
    with sessionmaker_for(request.app.state.settings.db_url)() as s:
        yield s


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_prefix: str
    scopes: frozenset[str]


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
KEY_CACHE_SECONDS = 30.0  # a revoked key stops working within this window
_verified: dict[str, tuple[float, Principal]] = {}  # sha256(key) -> (expiry, principal)


def principal(request: Request, s: Session = Depends(session)) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "unauthorized", "Missing API key", "send Authorization: Bearer <key>", _CHALLENGE)
    digest = hashlib.sha256(token.encode()).hexdigest()
    hit = _verified.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    record = keys.verify(s, token)
    if record is None:
        raise Problem(401, "unauthorized", "Invalid API key", "the key is unknown or revoked", _CHALLENGE)
    found = Principal(record.tenant_id, record.prefix, frozenset(record.scopes))
    if len(_verified) > 4096:  # bounded: forget everything rather than track ages
        _verified.clear()
    _verified[digest] = (time.monotonic() + KEY_CACHE_SECONDS, found)
    return found


def require(scope: str):
    """Dependency factory: the caller's key must carry `scope` (or admin)."""

    def check(p: Principal = Depends(principal)) -> Principal:
        if scope not in p.scopes and "admin" not in p.scopes:
            raise Problem(403, "forbidden", "Insufficient scope", f"this call needs the {scope} scope")
        return p

    return check
