"""Layer boundaries: the workflow stays free of I/O code and schedules only activities the worker
registers; the API starts and signals workflows but never runs an activity's code itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from refunds.domain import activity_names
from tests.stack import Stack
from worker import activities

IO_PACKAGES = (
    *("activities", "refunds.db", "refunds.gateways", "refunds.sandboxes", "api"),
    *("refunds.settings", "refunds.runtime", "refunds.embedded", "refunds.cli"),
    *("stripe", "wechatpayv3", "sqlalchemy", "psycopg", "httpx"),
)


def packages_loaded_by(module: str, repo_root: Path) -> set[str]:
    """Packages (top-level, and the second level under `refunds`) a fresh interpreter has
    loaded after importing `module`."""
    probe = (
        f"import sys, {module}\n"
        "names = {'.'.join(m.split('.')[:2]) if m.startswith('refunds.') else m.split('.')[0]"
        " for m in sys.modules}\n"
        "print(' '.join(sorted(names)))\n"
    )
    return set(
        subprocess.run(
            [sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.split()
    )


@pytest.mark.parametrize("module", ["workflows.refund_v1", "workflows.reconciliation"])
def test_importing_a_workflow_loads_no_io_package(repo_root: Path, module: str) -> None:
    loaded = packages_loaded_by(module, repo_root)
    assert "workflows" in loaded
    assert [name for name in IO_PACKAGES if name in loaded] == []


def test_the_api_does_not_load_the_activities(repo_root: Path) -> None:
    loaded = packages_loaded_by("api.main", repo_root)
    assert {"api", "workflows"} <= loaded
    assert {"activities", "worker"}.isdisjoint(loaded)


def test_every_scheduled_name_is_a_registered_activity(
    sessionmaker: async_sessionmaker[AsyncSession], temporal: Client, stack: Stack
) -> None:
    registered = {
        activity._Definition.must_from_callable(fn).name
        for fn in activities(sessionmaker, {}, temporal, stack.settings)
    }
    scheduled = {
        value for key, value in vars(activity_names).items() if key.isupper() and key[0] != "_"
    }
    assert len(scheduled) == 13
    assert scheduled == registered
