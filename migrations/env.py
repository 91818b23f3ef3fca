"""Alembic environment: the database URL comes from the service settings (TOPIARY_DATABASE_URL,
else the embedded SQLite file), or from `-x url=...` on the command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from db.engine import make_engine
from db.models import Base
from db.settings import get_settings

config = context.config
# any constant: every upgrader of a PostgreSQL database takes the same transaction-level lock
MIGRATION_LOCK = 0x746F7069617279
url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url") or get_settings().db_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            # batch mode lets later ALTERs work on SQLite too
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # The API and the workers all upgrade at start-up; without this, two upgraders
                    # of a fresh database both create the tables and all but one fail. The lock is
                    # taken before alembic reads the current revision, so the later ones find the
                    # work done. (SQLite serializes writers by itself.)
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                context.run_migrations()
    finally:
        engine.dispose()  # no pooled connections left behind


if context.is_offline_mode():
    run_offline()
else:
    run_online()
