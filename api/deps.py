"""Request dependencies: a database session per request and the authenticated principal."""

from __future__ import annotations

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


def principal(request: Request, s: Session = Depends(session)) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthorized", "Missing API key", "send Authorization: Bearer <key>", _CHALLENGE)
    record = keys.verify(s, token.strip())
    if record is None:
        raise Problem(401, "unauthorized", "Invalid API key", "the key is unknown or revoked", _CHALLENGE)
    return Principal(record.tenant_id, record.prefix, frozenset(record.scopes))


def require(scope: str):
    """Dependency factory: the caller's key must carry `scope` (or admin)."""

    def check(p: Principal = Depends(principal)) -> Principal:
        if scope not in p.scopes and "admin" not in p.scopes:
            raise Problem(403, "forbidden", "Insufficient scope", f"this call needs the {scope} scope")
        return p

    return check
