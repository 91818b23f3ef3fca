"""Request dependencies: a database session per request and the authenticated principal.

All of them are `async def` and do no I/O on the common path (a cached key, a session that has
not touched the database yet), so a request costs one thread-pool hop: its endpoint. Each sync
dependency would cost another hop through anyio, which under load is as much CPU as the query."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from db import keys
from db.engine import sessionmaker_for
from db.settings import Settings

from .problems import Problem


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def session(request: Request) -> AsyncIterator[Session]:
    """GET/HEAD get an autocommit session (one round trip per read); other methods a normal one
    that the endpoint commits. Closing costs no I/O unless a transaction is still open (an
    error mid-write), and then the rollback runs in the thread pool."""
    readonly = request.method in ("GET", "HEAD")
    s = sessionmaker_for(request.app.state.settings.db_url, readonly)()
    try:
        yield s
    finally:
        if s.in_transaction():
            await run_in_threadpool(s.close)
        else:
            s.close()


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_prefix: str
    scopes: frozenset[str]


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
KEY_CACHE_SECONDS = 2.0  # a key revoked through another API process stops working within this window
_verified: dict[str, tuple[float, Principal]] = {}  # sha256(key) -> (expiry, principal)


def _verify(db_url: str, token: str):
    with sessionmaker_for(db_url, True)() as s:
        return keys.verify(s, token)


async def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "unauthorized", "Missing API key", "send Authorization: Bearer <key>", _CHALLENGE)
    digest = hashlib.sha256(token.encode()).hexdigest()
    hit = _verified.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    record = await run_in_threadpool(_verify, request.app.state.settings.db_url, token)
    if record is None:
        raise Problem(401, "unauthorized", "Invalid API key", "the key is unknown or revoked", _CHALLENGE)
    found = Principal(record.tenant_id, record.prefix, frozenset(record.scopes))
    if len(_verified) > 4096:  # bounded: forget everything rather than track ages
        _verified.clear()
    _verified[digest] = (time.monotonic() + KEY_CACHE_SECONDS, found)
    return found


def forget(prefix: str) -> None:
    """Drop a key from this process's cache (it was just revoked here)."""
    for digest, (_, found) in list(_verified.items()):
        if found.key_prefix == prefix:
            _verified.pop(digest, None)


def _verify_link(db_url: str, token: str, path: str):
    with sessionmaker_for(db_url, True)() as s:
        return keys.verify_link(s, token, path, time.time())


async def link_principal(request: Request) -> Principal:
    """The key behind a download link (`?link=`, db.keys.sign_link), for this very path."""
    record = await run_in_threadpool(_verify_link, request.app.state.settings.db_url,
                                     request.query_params["link"], request.url.path)
    if record is None:
        raise Problem(401, "unauthorized", "Invalid download link",
                      "the link is expired, for another path, or its key was revoked; ask for a new one")
    return Principal(record.tenant_id, record.prefix, frozenset(record.scopes))


def require(scope: str, links: bool = False):
    """Dependency factory: the caller's key must carry `scope` (or admin). One dependency, not
    two nested ones: each level costs FastAPI a resolution pass on every request. `links`: a
    signed download link (`?link=`) may stand in for the key on this GET."""

    async def check(request: Request) -> Principal:
        if links and "link" in request.query_params:
            p = await link_principal(request)
        else:
            p = await principal(request)
        if scope not in p.scopes and "admin" not in p.scopes:
            raise Problem(403, "forbidden", "Insufficient scope", f"this call needs the {scope} scope")
        return p

    return check
