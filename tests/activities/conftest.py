"""The activity classes under test, on the session's real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.restore import RestoreActivities
from activities.restore_reversal import RestoreReversalActivities


@pytest.fixture
def restore(sessionmaker: async_sessionmaker[AsyncSession]) -> RestoreActivities:
    return RestoreActivities(sessionmaker)


@pytest.fixture
def reversal(sessionmaker: async_sessionmaker[AsyncSession]) -> RestoreReversalActivities:
    return RestoreReversalActivities(sessionmaker)
