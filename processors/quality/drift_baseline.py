"""Drift baselines: what a reference window is, and its file format (.npz, or a bare .npy array).

A baseline is a set of embeddings of known-good outputs for one (feature, model), in one embedding
space. Saving it lets a restarted process keep its reference instead of re-learning "normal" from
whatever traffic comes first (which may already be drifted); loading checks the embedding space, because
vectors of another embedder (or the same one with other parameters) would all look drifted.

``.npz`` (what `save_baseline` writes, loaded with ``allow_pickle=False``):
  ``embeddings``  N x d float32, one row per output
  ``end_time_ns`` N int64 (optional): the outputs' end times, 0 if unknown
  ``meta``        a JSON string: ``{"format": "llm-telemetry-drift-baseline", "version": 1, "embedder": ...,
                  "dim": d, "feature": ..., "model": ..., "source": ...}``
``.npy``: a bare N x d array. It cannot say which embedder made it, so only its width is checked.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

FORMAT = "llm-telemetry-drift-baseline"
VERSION = 1

DriftKey = tuple[str, str]
"""(feature, model): the unit of drift monitoring."""


class BaselineFileError(ValueError):
    """A baseline file that cannot be used; the message names the file and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class BaselineInfo:
    """Where a key's reference window came from — named in every alert."""

    key: DriftKey
    source: str
    """``first_n`` (the first outputs seen), ``set_baseline`` (given by the app) or ``file:<path>``."""
    size: int
    embedder: str
    start_time_ns: int | None = None
    """Time range of the reference outputs, when known (``None`` for texts given without times)."""
    end_time_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Baseline:
    """Reference embeddings plus what is known about them."""

    embeddings: np.ndarray
    end_times_ns: np.ndarray | None
    info: BaselineInfo


def baseline_path(directory: str | os.PathLike[str], key: DriftKey) -> Path:
    """The file a key's baseline lives in under ``directory`` (names percent-encoded: reversible, no collisions)."""
    feature, model = key
    return Path(directory) / f"{quote(feature, safe='')}--{quote(model, safe='')}.npz"


def time_range(end_times_ns: np.ndarray | None) -> tuple[int | None, int | None]:
    """(earliest, latest) of the known (non-zero) times."""
    if end_times_ns is None:
        return None, None
    known = end_times_ns[end_times_ns > 0]
    if known.size == 0:
        return None, None
    return int(known.min()), int(known.max())


def save_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    """Write ``baseline`` as .npz, atomically (a crash leaves the old file or the new one, never half)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    feature, model = baseline.info.key
    meta = {
        "format": FORMAT, "version": VERSION, "embedder": baseline.info.embedder, "dim": int(baseline.embeddings.shape[1]),
        "feature": feature, "model": model, "source": baseline.info.source,
    }
    times = baseline.end_times_ns if baseline.end_times_ns is not None else np.zeros(len(baseline.embeddings), dtype=np.int64)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp.npz", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, embeddings=baseline.embeddings.astype(np.float32), end_time_ns=times.astype(np.int64),
                     meta=np.array(json.dumps(meta)))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_baseline(path: str | os.PathLike[str], key: DriftKey, *, embedder: str, dim: int, min_size: int) -> Baseline:
    """Read and check a baseline file for ``key`` in the embedding space ``embedder`` (``dim`` wide).

    Raises `BaselineFileError` naming the file and the problem: unreadable, wrong format, another
    embedder or width, too few rows for the window, non-finite values.
    """
    source = Path(path)
    where = f"drift baseline file {str(source)!r}"
    try:
        loaded = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BaselineFileError(f"{where}: cannot read it as .npy/.npz: {exc}") from None
    end_times: np.ndarray | None = None
    if isinstance(loaded, np.ndarray):
        embeddings = loaded
    else:
        with loaded:
            if "embeddings" not in loaded.files:
                raise BaselineFileError(f"{where}: no 'embeddings' array (found {sorted(loaded.files)})")
            embeddings = loaded["embeddings"]
            if "meta" in loaded.files:
                _check_meta(where, str(loaded["meta"]), embedder)
            if "end_time_ns" in loaded.files:
                end_times = loaded["end_time_ns"].astype(np.int64)
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        raise BaselineFileError(f"{where}: expected a 2-D float array of embeddings, got {embeddings.dtype} with shape {embeddings.shape}")
    if embeddings.shape[1] != dim:
        raise BaselineFileError(f"{where}: embeddings are {embeddings.shape[1]}-dimensional, the embedder {embedder!r} makes {dim}")
    if len(embeddings) < min_size:
        raise BaselineFileError(f"{where}: {len(embeddings)} embeddings, the drift window needs at least {min_size}")
    if not np.isfinite(embeddings).all():
        raise BaselineFileError(f"{where}: contains NaN or infinite values")
    if end_times is not None and end_times.shape != (len(embeddings),):
        raise BaselineFileError(f"{where}: end_time_ns has shape {end_times.shape}, expected ({len(embeddings)},)")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    if (norms == 0).any():
        raise BaselineFileError(f"{where}: contains all-zero rows")
    start, end = time_range(end_times)
    info = BaselineInfo(key=key, source=f"file:{source}", size=len(embeddings), embedder=embedder, start_time_ns=start, end_time_ns=end)
    return Baseline((embeddings / norms).astype(np.float32), end_times, info)


def _check_meta(where: str, text: str, embedder: str) -> None:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineFileError(f"{where}: 'meta' is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BaselineFileError(f"{where}: 'meta' is not a {FORMAT} header")
    if meta.get("version") != VERSION:
        raise BaselineFileError(f"{where}: format version {meta.get('version')!r}, this llm-telemetry reads version {VERSION}")
    if meta.get("embedder") != embedder:
        raise BaselineFileError(
            f"{where}: made by embedder {meta.get('embedder')!r}, the monitor uses {embedder!r} "
            "(vectors from another embedding space would all look drifted; rebuild the baseline)"
        )
