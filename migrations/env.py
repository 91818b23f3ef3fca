"""Alembic environment: the database URL comes from the service settings (TOPIARY_DATABASE_URL,
else the embedded SQLite file), or from `-x url=...` on the command line."""

from __future__ import annotations

from alembic import context
from db.engine import make_engine
from db.models import Base
from db.settings import get_settings

config = context.config
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
                context.run_migrations()
    finally:
        engine.dispose()  # no pooled connections left behind


if context.is_offline_mode():
    run_offline()
else:
    run_online()
