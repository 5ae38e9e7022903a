"""`refunds migrate`: bring the schema to head with Alembic. Safe to run any number of times."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config is a ConfigParser: a bare `%` (a URL-encoded password) is interpolation
    # syntax and crashes it; `%%` reads back as `%`, so env.py sees the URL unchanged.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")
