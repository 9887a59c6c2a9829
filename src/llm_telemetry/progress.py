"""A one-line progress bar on stderr for long CLI work (demo, eval, canary, report over a large store).

A few lines of our own rather than ``tqdm``: the ``openai`` SDK no longer pulls it in, and a telemetry
package should not add a dependency for a progress bar. It only draws on a terminal (or when forced),
and only once the work has taken longer than a second: short runs and logs stay clean.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO


class Progress:
    """``[#####.....] 12/40 cases, 3 failing, 2.1/s, ETA 13s`` redrawn on one stderr line (``unit`` names the items).

    ``enabled=None`` (auto): only when the stream is a terminal, and only once the run has taken over
    ``delay_s`` — short runs print nothing. ``True`` forces it (any stream), ``False`` disables it.
    """

    def __init__(
        self, total: int, *, enabled: bool | None = None, stream: IO[str] | None = None, delay_s: float = 1.0, unit: str = "cases",
    ) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled if enabled is not None else _isatty(self.stream)
        self.delay_s = 0.0 if enabled else delay_s
        self.done = 0
        self.failing = 0
        self._start = time.monotonic()
        self._drawn = False
        self._lock = threading.Lock()

    def advance(self, passed: bool = True) -> None:
        with self._lock:
            self.done += 1
            self.failing += not passed
            if self.enabled and time.monotonic() - self._start >= self.delay_s:
                self._draw()

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()

    def _draw(self) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit}, {self.failing} failing, "
            f"{rate:.1f}/s, ETA {eta:.0f}s "
        )
        self.stream.flush()
        self._drawn = True


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
