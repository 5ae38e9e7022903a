"""The restore activities under test, on the session's real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.restore import RestoreActivities


@pytest.fixture
def restore(sessionmaker: async_sessionmaker[AsyncSession]) -> RestoreActivities:
    return RestoreActivities(sessionmaker)
