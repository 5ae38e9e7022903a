"""Pure rules of the daily reconciliation (issue 9): its window, what is overdue."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_window(day: str | None, time_zone: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of `day` (YYYY-MM-DD) in `time_zone`; no day: the day before `now` there."""
    zone = ZoneInfo(time_zone)
    wanted = date.fromisoformat(day) if day else now.astimezone(zone).date() - timedelta(days=1)
    start = datetime.combine(wanted, time(0), zone)
    return start, datetime.combine(wanted + timedelta(days=1), time(0), zone)


def overdue_by(status: str, since: datetime, now: datetime, limits: dict[str, timedelta]) -> bool:
    limit = limits.get(status)
    return limit is not None and now - since > limit
