"""`refunds migrate` takes any valid PostgreSQL URL, including a URL-encoded password with `%`
(Alembic's config is a ConfigParser, where a bare `%` is interpolation syntax)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from refunds.db.migrate import upgrade

PASSWORD = "p%40ss@w:rd/50%?#&=é "


def test_migrate_takes_a_url_encoded_password_with_percent_and_at(
    database_url: str, tmp_path: Path
) -> None:
    admin = make_url(database_url)
    role = f"mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        admin.set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*[sql.Identifier(role)] * 2))
    url = f"postgresql://{role}:{quote(PASSWORD, safe='')}@{admin.host}:{admin.port}/{role}"

    upgrade(url)

    # and the command, twice (the second run finds the schema at head)
    env = {**os.environ, "REFUNDS_DATABASE_URL": url, "REFUNDS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "refunds.cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(
        host=admin.host, port=admin.port, dbname=role, user=role, password=PASSWORD
    ) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
    assert version
