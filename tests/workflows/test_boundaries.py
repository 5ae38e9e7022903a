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

from activities.contracts import GatewayCalls, LedgerSteps, RestoreSteps
from refunds.domain import activity_names
from tests.stack import Stack
from worker import activities, gateway_activities

IO_PACKAGES = (
    *("activities.ledger", "activities.restore", "activities.gateway", "activities.errors"),
    *(
        "activities.reconciliation",
        "activities.restore_reversal",
        "refunds.db",
        "refunds.gateways",
        "refunds.sandboxes",
        "api",
    ),
    *("refunds.settings", "refunds.runtime", "refunds.embedded", "refunds.cli"),
    *("stripe", "wechatpayv3", "sqlalchemy", "psycopg", "httpx"),
)


def packages_loaded_by(module: str, repo_root: Path) -> set[str]:
    """Packages (top-level, and the second level under `refunds` and `activities`) a fresh
    interpreter has loaded after importing `module`."""
    probe = (
        f"import sys, {module}\n"
        "names = {'.'.join(m.split('.')[:2]) if m.startswith(('refunds.', 'activities.'))"
        " else m.split('.')[0] for m in sys.modules}\n"
        "print(' '.join(sorted(names)))\n"
    )
    return set(
        subprocess.run(
            [sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.split()
    )


@pytest.mark.parametrize(
    "module",
    [
        "workflows.refund",
        "workflows.refund_v1",
        "workflows.reconciliation",
        "workflows.payment_check",
    ],
)
def test_importing_a_workflow_loads_no_io_package(repo_root: Path, module: str) -> None:
    loaded = packages_loaded_by(module, repo_root)
    assert "workflows" in loaded
    assert [name for name in IO_PACKAGES if name in loaded] == []


def test_the_api_does_not_load_the_activities(repo_root: Path) -> None:
    loaded = packages_loaded_by("api.main", repo_root)
    assert {"api", "workflows"} <= loaded
    # The workflow's typed seam (signatures only) comes with it; no activity's code does.
    assert {name for name in loaded if name.startswith("activities")} <= {
        "activities",
        "activities.contracts",
    }
    assert "worker" not in loaded


def _declared(contract: type) -> set[str]:
    """The activity names a contract class declares (its `@activity.defn` methods)."""
    return {
        definition.name
        for member in vars(contract).values()
        if (definition := activity._Definition.from_callable(member)) is not None
        and definition.name is not None
    }


def test_every_scheduled_activity_is_registered_on_its_queue(
    sessionmaker: async_sessionmaker[AsyncSession], temporal: Client, stack: Stack
) -> None:
    main = {
        activity._Definition.must_from_callable(fn).name
        for fn in activities(sessionmaker, {}, temporal, stack.settings)
    }
    gateway_queue = {
        activity._Definition.must_from_callable(fn).name
        for fn in gateway_activities(sessionmaker, {})
    }
    # The refund workflow's seam: ledger and restore steps on the main queue, gateway calls on
    # each channel's queue (and nowhere else: the rate limit holds only there).
    assert _declared(LedgerSteps) | _declared(RestoreSteps) <= main
    assert _declared(GatewayCalls) == gateway_queue
    assert gateway_queue.isdisjoint(main)
    # The first workflow type schedules by these names until its runs drain.
    first_type = {
        value for key, value in vars(activity_names).items() if key.isupper() and key[0] != "_"
    }
    assert len(first_type) == 13
    assert first_type <= main
    assert main == first_type | _declared(LedgerSteps) | _declared(RestoreSteps)
