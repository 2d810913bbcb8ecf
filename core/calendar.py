"""Working days: Monday to Friday, minus configured holidays. Deadlines count in working days."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta


class WorkingCalendar:
    """Adds working days to a moment, skipping weekends and holidays."""

    def __init__(self, holidays: Iterable[date] = ()) -> None:
        self.holidays = frozenset(holidays)

    def with_holidays(self, extra: Iterable[date]) -> WorkingCalendar:
        """This calendar with more non-working days (a plugin's, say)."""
        extra = frozenset(extra)
        return self if extra <= self.holidays else WorkingCalendar(self.holidays | extra)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same time of day, ``days`` working days after ``start``."""
        moment = start
        remaining = days
        while remaining > 0:
            moment += timedelta(days=1)
            if self.is_working_day(moment.date()):
                remaining -= 1
        return moment
