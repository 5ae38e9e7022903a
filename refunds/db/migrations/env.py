"""Alembic environment: runs migrations on the URL the caller put in the config (sync psycopg)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from refunds.db.engine import async_url
from refunds.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = async_url(config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
