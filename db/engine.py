"""Engines and sessions, built on first use (never at import time)."""

from __future__ import annotations

import functools

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # FKs for cascades; WAL so readers never block the worker
            cur = conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    # Pre-ping: a connection broken by a server restart is found and replaced at checkout, so
    # after a restart no request fails on a dead pooled connection (without it, the first
    # statement of each process failed once).
    return create_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800, pool_pre_ping=True)


@functools.lru_cache(maxsize=8)
def sessionmaker_for(url: str, autocommit: bool = False) -> sessionmaker[Session]:
    """Sessions on one engine per URL. `autocommit=True` gives sessions for reads: each statement
    commits on its own, so a read costs one round trip instead of BEGIN, SELECT and ROLLBACK
    (same pool; the isolation level is switched client-side on checkout). Clearing this cache
    drops the engines too (a forked process must not reuse its parent's connections)."""
    if autocommit:
        engine = sessionmaker_for(url).kw["bind"].execution_options(isolation_level="AUTOCOMMIT")
        return sessionmaker(engine, expire_on_commit=False)
    return sessionmaker(make_engine(url), expire_on_commit=False)
