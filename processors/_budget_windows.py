"""Calendar windows for budgets: the current day and hour in a time zone, as epoch-second ranges.

Budgets roll at local midnight / the top of the local hour in ``budget.timezone``, so a window is not
always 24 h or 3600 s of wall time (DST days are 23 or 25 h; the repeated autumn hour is two windows).
Boundaries are computed with `zoneinfo` when the clock leaves the cached window and compared as
floats otherwise, which keeps the per-span cost to one clock read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    """Local start of the window (aware, in the budget time zone)."""
    start_ts: float
    end_ts: float

    def contains(self, ts: float) -> bool:
        return self.start_ts <= ts < self.end_ts


def day_window(now: datetime, tz: ZoneInfo) -> Window:
    local = now.astimezone(tz)
    start = datetime.combine(local.date(), clock_time(0), tzinfo=tz)
    end = datetime.combine(local.date() + timedelta(days=1), clock_time(0), tzinfo=tz)
    return Window(start, start.timestamp(), end.timestamp())


def hour_window(now: datetime, tz: ZoneInfo) -> Window:
    local = now.astimezone(tz)
    start = local.replace(minute=0, second=0, microsecond=0)  # keeps `fold`: the repeated DST hour is its own window
    start_ts = start.timestamp()
    return Window(start, start_ts, start_ts + 3600.0)


class WindowClock:
    """Reads the clock once per span and keeps the current day and hour windows.

    ``clock`` (for tests and replays) returns an aware ``datetime``; a naive one is taken as local time
    in ``tz``. Without it the system clock is read as a float and a ``datetime`` is only built when a
    window rolls.
    """

    def __init__(self, tz: ZoneInfo, clock: Callable[[], datetime] | None = None) -> None:
        self.tz = tz
        self._clock = clock
        now = self._now_datetime()
        self.day = day_window(now, tz)
        self.hour = hour_window(now, tz)

    def _now_datetime(self) -> datetime:
        if self._clock is None:
            return datetime.fromtimestamp(time.time(), self.tz)
        now = self._clock()
        return now.replace(tzinfo=self.tz) if now.tzinfo is None else now

    def tick(self, at_ts: float | None = None) -> float:
        """The current time (epoch seconds), rolling ``day`` / ``hour`` when it left them.

        ``at_ts``: the call's own end time, used when no test clock is set — windows follow the call's time,
        not the time the pipeline processed it (a gateway may see calls late or replayed). Windows never
        roll back: a call older than the current window is counted in it (a closed window's spend is gone).
        """
        if self._clock is None:
            ts = time.time() if at_ts is None else max(at_ts, self.hour.start_ts)
            now = None
        else:
            now = self._now_datetime()
            ts = now.timestamp()
        if not (self.day.contains(ts) and self.hour.contains(ts)):
            if now is None:
                now = datetime.fromtimestamp(ts, self.tz)
            if not self.day.contains(ts):
                self.day = day_window(now, self.tz)
            if not self.hour.contains(ts):
                self.hour = hour_window(now, self.tz)
        return ts
