"""Databases for service tests: a fresh PostgreSQL database per test session on the real server
(127.0.0.1:5432 unless TOPIARY_TEST_PG_ADMIN_URL says otherwise), and a SQLite file."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("TOPIARY_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def postgres_database():
    """Create an isolated database, yield its SQLAlchemy URL, drop it afterwards."""
    import psycopg

    name = f"topiary_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic(url: str, *args: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    getattr(command, args[0])(cfg, *args[1:])
