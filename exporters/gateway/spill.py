"""The spill directory: queued requests on disk, one file each, bounded, and found again after a restart.

Why files and not a database: an item is written once, read once and deleted; a file per item needs no
compaction, and a crash mid-write leaves only a ``.tmp`` file (removed at start) because the final name
appears by an atomic rename after ``fsync``. File names carry what the queue needs to rebuild its order
after a restart without reading the payloads: ``<sequence>-<signal>-<items>.otlp``.

One gateway per directory: a second one would send the same items twice, so the directory is locked
(``flock``) and a second gateway refuses to start, naming it.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.gateway.otlp import SIGNALS, Signal

_NAME = re.compile(r"^(\d{20})-(traces|metrics|logs)-(\d+)\.otlp$")
_LOCK_NAME = ".lock"


@dataclass(slots=True)
class Item:
    """One queued request: in memory (``payload`` set) or on disk (``path`` set, payload read on demand)."""

    seq: int
    signal: Signal
    items: int
    size: int
    payload: bytes | None = None
    path: Path | None = None


class SpillStore:
    """A directory of serialized OTLP requests. Not thread-safe by itself: the queue serializes index changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_file: IO[str] = open(directory / _LOCK_NAME, "a+")  # noqa: SIM115 (held for the gateway's life)
        except OSError as exc:
            raise ConfigError(f"--spill-dir {str(directory)!r}: cannot use it: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ConfigError(
                f"--spill-dir {str(directory)!r} is in use by another llm-telemetry collector; give each gateway its own"
            ) from None

    def load(self) -> list[Item]:
        """Items left by an earlier run, oldest first; half-written ``.tmp`` files are removed."""
        found: list[Item] = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            match = _NAME.match(path.name)
            if match is None:
                continue
            seq, signal, items = int(match.group(1)), match.group(2), int(match.group(3))
            if signal in SIGNALS:
                found.append(Item(seq, cast(Signal, signal), items, path.stat().st_size, path=path))
        found.sort(key=lambda item: item.seq)
        return found

    def write(self, item: Item, payload: bytes) -> None:
        """Store ``payload`` durably under ``item``'s name; sets ``item.path``. Raises ``OSError``."""
        final = self.directory / f"{item.seq:020d}-{item.signal}-{item.items}.otlp"
        temporary = final.with_name(final.name + ".tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        item.path = final

    @staticmethod
    def read(item: Item) -> bytes:
        assert item.path is not None
        return item.path.read_bytes()

    @staticmethod
    def remove(item: Item) -> None:
        if item.path is not None:
            item.path.unlink(missing_ok=True)

    def close(self) -> None:
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        finally:
            self._lock_file.close()
