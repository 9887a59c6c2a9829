"""`DriftMonitor`: calibrated embedding drift per (feature, model), the engine behind the drift lane.

What it answers: "do this feature's outputs from this model still look like the known-good ones?" —
for changes no per-output rule names in advance (another template, another language, refusals, a new
output format). Per key it holds a reference window (the first N outputs, a saved file, or texts the app
gives) and an ERT-calibrated online MMD detector over a sliding window of the latest outputs
(`online_mmd`); on an alarm it raises one alert for the episode, and a recovery once the window has stayed
under the threshold for ``recover_after`` points:

    collecting ──(N outputs / baseline given)──▶ ok ──(score > threshold)──▶ alert
                                                 ▲                            │
                                                 └──(recover_after points ≤ threshold: DriftRecovery)

The alert names the baseline and the window (sizes, time ranges), the MMD² and its threshold, a
permutation p-value of reference vs window, an estimated start, and the outputs nearest the shift: the
window's outputs where the MMD witness function (mean kernel to the window minus mean kernel to the
reference) is highest — the outputs that are over-represented compared with the reference. Their trace
ids always; their texts only with ``keep_texts`` (content opt-in).

Threading: not thread-safe. One background worker (the drift lane) makes every call, `set_baseline`
and `load_baseline` included; embedding and calibration are CPU work that must never run on the app
thread. `stats` counters are plain ints that another thread may read (each read is atomic).

Memory is bounded: ``batch_size`` pending texts; per key the N reference vectors, the detector's
sub-reference copy and a W-point window (about (2N + 2W)·d·4 + 2W²·8 bytes: 1.1 MB at N=500, W=50,
d=256); at most ``max_keys`` keys (35 MB at the default 32), the least recently seen evicted first
(counted in ``stats.evicted_keys``).

Where state lives (design note 5): in this process, so a baseline covers one replica's traffic for
the key; behind a gateway, route each (feature, model) to one gateway.
"""

from __future__ import annotations

import logging
import math
import os
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np

from llm_telemetry.processors.quality.drift_baseline import (
    Baseline,
    BaselineFileError,
    BaselineInfo,
    DriftKey,
    baseline_path,
    load_baseline,
    save_baseline,
    time_range,
)
from llm_telemetry.processors.quality.drift_report import (
    DriftAlert,
    DriftDecision,
    DriftRecovery,
    DriftStats,
    build_alert,
)
from llm_telemetry.processors.quality.embedders import Embedder
from llm_telemetry.processors.quality.mmd import PermutationTestResult, permutation_test
from llm_telemetry.processors.quality.online_mmd import OnlineMMD, default_bootstraps

logger = logging.getLogger(__name__)

DriftState = Literal["collecting", "ok", "alert"]


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Drift settings; every field is checked at construction (a bad value raises ValueError naming it)."""

    reference_size: int = 500
    """N: outputs in a reference window learned from traffic (first N after start)."""
    window_size: int = 50
    """W: the sliding test window. Small reacts faster to strong shifts, large sees subtler ones; N ≥ 2W + 1."""
    ert: float = 1000.0
    """Expected outputs between false alarms per key on unchanged traffic. Calibrated precisely up to about
    n_bootstraps/10 (2,500 with the default cap); above that the rate is only roughly right."""
    n_bootstraps: int | None = None
    """Simulated streams for the calibration; default ~10·ERT (1,000..25,000)."""
    recover_after: int | None = None
    """Consecutive outputs at or under the threshold that end an alert episode; default W."""
    batch_size: int = 32
    """Texts embedded per embedder call."""
    max_delay_s: float = 5.0
    """An `observe` call embeds the pending texts once the oldest has waited this long, even if fewer than batch_size."""
    max_keys: int = 32
    nearest_k: int = 5
    """Outputs named in an alert as nearest the shift."""
    batch_check_every: int = 0
    """Run a permutation test (p-value) every this many monitored outputs per key; 0: only at alerts and in `check`."""
    n_permutations: int = 500
    keep_texts: bool = False
    """Keep the window's texts so alerts can quote them (content opt-in); otherwise trace ids only."""
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("keep_texts",) or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"drift {f.name} must be a number, got {value!r}")
        minimum = {"reference_size": 5, "window_size": 2, "batch_size": 1, "max_keys": 1, "nearest_k": 0, "batch_check_every": 0,
                   "n_permutations": 1, "seed": 0, "recover_after": 1, "n_bootstraps": 10}
        for name, low in minimum.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < low):
                raise ValueError(f"drift {name} must be an integer ≥ {low}, got {value!r}")
        if self.reference_size < 2 * self.window_size + 1:
            raise ValueError(
                f"drift reference_size ({self.reference_size}) must be at least 2·window_size + 1 = {2 * self.window_size + 1}"
            )
        if not self.ert > 1:
            raise ValueError(f"drift ert must be > 1 (outputs between false alarms), got {self.ert!r}")
        if not self.max_delay_s >= 0:
            raise ValueError(f"drift max_delay_s must be ≥ 0, got {self.max_delay_s!r}")


class _Key:
    """One key's state: reference being collected or installed, the detector, the window's metadata ring."""

    __slots__ = ("below", "collected", "collected_times", "detector", "episode", "key", "reference", "state",
                 "texts", "times", "trace_ids")

    def __init__(self, key: DriftKey) -> None:
        self.key = key
        self.collected: list[np.ndarray] = []
        self.collected_times: list[int] = []
        self.reference: Baseline | None = None
        self.detector: OnlineMMD | None = None
        self.state: DriftState = "collecting"
        self.trace_ids: list[int] = []
        self.times: list[int] = []
        self.texts: list[str | None] = []
        self.episode: DriftAlert | None = None
        self.below = 0


class DriftMonitor:
    """Embedding drift per (feature, model): feed outputs with `observe`, act on the returned decisions."""

    def __init__(
        self, embedder: Embedder, config: DriftConfig | None = None, *, baseline_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._embedder = embedder
        self._config = config or DriftConfig()
        self._dir = Path(baseline_dir) if baseline_dir is not None else None
        self._keys: OrderedDict[DriftKey, _Key] = OrderedDict()
        self._pending: list[tuple[DriftKey, str, int, int]] = []
        self._pending_since = 0.0
        self.stats = DriftStats()
        bootstraps = self._config.n_bootstraps or default_bootstraps(self._config.ert)
        if bootstraps < 10 * self._config.ert:
            logger.warning(
                "llm-telemetry drift: ert=%g is beyond what %d simulated streams calibrate precisely (about n_bootstraps/10);"
                " false alarms will be rarer or more frequent than set", self._config.ert, bootstraps,
            )

    @property
    def config(self) -> DriftConfig:
        return self._config

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def pending(self) -> int:
        """Texts waiting for the next embedding batch."""
        return len(self._pending)

    # --- the stream ---------------------------------------------------------------------------------

    def observe(self, key: DriftKey, text: str | None, end_time_ns: int | None, trace_id: int = 0) -> list[DriftDecision]:
        """Queue one output; when a batch is due, embed it and return one decision per output processed.

        ``end_time_ns`` is the call's own end time (``GenAICall.end_time_ns``; ``None``/0 if unknown): windows
        and alerts report it, the arrival order decides the window. Empty outputs are skipped (counted).
        Never raises for the stream's sake: embedder or calibration failures are logged and counted, and the
        affected outputs dropped.
        """
        self.stats.observed += 1
        if not text or not text.strip():
            self.stats.skipped_empty += 1
            return []
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((key, text, end_time_ns or 0, trace_id))
        if len(self._pending) >= self._config.batch_size or time.monotonic() - self._pending_since >= self._config.max_delay_s:
            return self.flush()
        return []

    def flush(self) -> list[DriftDecision]:
        """Embed and process every pending output now (call when the worker is idle and at shutdown)."""
        batch, self._pending = self._pending, []
        if not batch:
            return []
        try:
            vectors = self._embedder.embed([text for _, text, _, _ in batch])
            if vectors.shape != (len(batch), self._embedder.dim):
                raise ValueError(f"embedder {self._embedder.name!r} returned shape {vectors.shape} for {len(batch)} texts")
        except Exception as exc:
            self.stats.embed_failures += len(batch)
            logger.warning("llm-telemetry drift: embedder %r failed (%s); %d outputs dropped",
                           self._embedder.name, type(exc).__qualname__, len(batch))
            return []
        self.stats.embedded += len(batch)
        return [self._step(self._state_for(key), vector, text, end_ns, trace_id)
                for (key, text, end_ns, trace_id), vector in zip(batch, vectors, strict=True)]

    def _step(self, st: _Key, vector: np.ndarray, text: str, end_ns: int, trace_id: int) -> DriftDecision:
        if st.detector is None:
            st.collected.append(vector)
            st.collected_times.append(end_ns)
            if len(st.collected) >= self._config.reference_size:
                times = np.asarray(st.collected_times, dtype=np.int64)
                start, end = time_range(times)
                info = BaselineInfo(st.key, "first_n", len(st.collected), self._embedder.name, start, end)
                baseline = Baseline(np.stack(st.collected), times, info)
                st.collected, st.collected_times = [], []
                try:
                    self._install(st, baseline)
                except Exception as exc:  # unexpected (memory?): start learning the reference again
                    logger.warning("llm-telemetry drift: calibration for %s failed (%s)", st.key, type(exc).__qualname__)
                else:
                    self._autosave(st)
            return DriftDecision(st.key, trace_id, end_ns, st.state, 0, None, None, None, None, None)

        det = st.detector
        slot = det.next_slot
        step = det.update(vector)
        st.trace_ids[slot], st.times[slot] = trace_id, end_ns
        if self._config.keep_texts:
            st.texts[slot] = text
        alert: DriftAlert | None = None
        recovery: DriftRecovery | None = None
        p_value: float | None = None
        if st.state == "ok" and step.drift:
            assert st.reference is not None
            result = self._window_test(st)
            alert = build_alert(st.key, st.reference.info, det, st.trace_ids, st.times, st.texts if self._config.keep_texts else None,
                                step, end_ns, trace_id, result, self._config.nearest_k)
            p_value = alert.p_value
            st.state, st.episode, st.below = "alert", alert, 0
            self.stats.alerts += 1
        elif st.state == "alert":
            assert st.episode is not None
            st.below = 0 if step.drift else st.below + 1
            if st.below >= (self._config.recover_after or self._config.window_size):
                recovery = DriftRecovery(st.key, st.episode.detected_time_ns, end_ns, trace_id, step.t - st.episode.t)
                st.state, st.episode, st.below = "ok", None, 0
                self.stats.recoveries += 1
        every = self._config.batch_check_every
        if p_value is None and every and step.t % every == 0:
            result = self._window_test(st)
            p_value = result.p_value if result else None
        return DriftDecision(st.key, trace_id, end_ns, st.state, step.t, step.score, step.threshold, p_value, alert, recovery)

    # --- baselines ------------------------------------------------------------------------------------

    def set_baseline(self, key: DriftKey, texts: Sequence[str], *, end_times_ns: Sequence[int] | None = None) -> BaselineInfo:
        """Make ``texts`` (known-good outputs) the key's reference and calibrate now; returns what was installed.

        Raises ValueError for too few non-empty texts; embedder errors propagate. Runs the embedder and the
        calibration on the calling thread: call it on the drift worker.
        """
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        needed = 2 * self._config.window_size + 1
        if len(keep) < needed:
            raise ValueError(f"set_baseline({key!r}): {len(keep)} non-empty texts, the drift window of "
                             f"{self._config.window_size} needs at least {needed} (500 or more is better)")
        vectors = self._embedder.embed([texts[i] for i in keep])
        times = np.asarray([end_times_ns[i] for i in keep], dtype=np.int64) if end_times_ns is not None else None
        start, end = time_range(times)
        info = BaselineInfo(key, "set_baseline", len(keep), self._embedder.name, start, end)
        st = self._state_for(key)
        self._install(st, Baseline(vectors, times, info))
        self._autosave(st)
        return info

    def load_baseline(self, key: DriftKey, path: str | os.PathLike[str]) -> BaselineInfo:
        """Install the baseline saved at ``path`` for ``key``; raises `BaselineFileError` naming the file and problem."""
        baseline = load_baseline(path, key, embedder=self._embedder.name, dim=self._embedder.dim,
                                 min_size=2 * self._config.window_size + 1)
        self._install(self._state_for(key), baseline)
        return baseline.info

    def save_baseline(self, key: DriftKey, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the key's installed reference (.npz) to ``path``, or to its file under ``baseline_dir``."""
        st = self._keys.get(key)
        if st is None or st.reference is None:
            raise ValueError(f"drift key {key!r} has no reference yet")
        if path is None:
            if self._dir is None:
                raise ValueError("save_baseline needs a path when the monitor has no baseline_dir")
            path = baseline_path(self._dir, key)
        return save_baseline(path, st.reference)

    def rebaseline(self, key: DriftKey) -> None:
        """Drop the key's reference (e.g. after a change was accepted as the new normal) and learn it again
        from the next ``reference_size`` outputs."""
        if key in self._keys:
            self._keys[key] = _Key(key)

    def forget(self, key: DriftKey) -> None:
        self._keys.pop(key, None)

    # --- queries --------------------------------------------------------------------------------------

    def keys(self) -> list[DriftKey]:
        return list(self._keys)

    def state(self, key: DriftKey) -> DriftState | None:
        st = self._keys.get(key)
        return st.state if st else None

    def baseline(self, key: DriftKey) -> BaselineInfo | None:
        st = self._keys.get(key)
        return st.reference.info if st and st.reference else None

    def check(self, key: DriftKey, *, n_permutations: int | None = None) -> PermutationTestResult | None:
        """Batch test now: reference vs the window's observed outputs; ``None`` before two are observed."""
        st = self._keys.get(key)
        return self._window_test(st, n_permutations) if st else None

    # --- internals ------------------------------------------------------------------------------------

    def _state_for(self, key: DriftKey) -> _Key:
        st = self._keys.get(key)
        if st is not None:
            self._keys.move_to_end(key)
            return st
        if len(self._keys) >= self._config.max_keys:
            evicted, _ = self._keys.popitem(last=False)
            self.stats.evicted_keys += 1
            logger.info("llm-telemetry drift: key %s evicted (max_keys=%d)", evicted, self._config.max_keys)
        st = self._keys[key] = _Key(key)
        if self._dir is not None:
            path = baseline_path(self._dir, key)
            if path.exists():
                try:
                    self._install(st, load_baseline(path, key, embedder=self._embedder.name, dim=self._embedder.dim,
                                                    min_size=2 * self._config.window_size + 1))
                except Exception as exc:
                    self.stats.baseline_file_errors += 1
                    logger.warning("llm-telemetry drift: %s; learning the reference from traffic instead", exc
                                   if isinstance(exc, BaselineFileError) else type(exc).__qualname__)
        return st

    def _install(self, st: _Key, baseline: Baseline) -> None:
        cfg = self._config
        seed = (cfg.seed * 1_000_003 + zlib.crc32(repr(st.key).encode())) & 0xFFFFFFFF
        try:
            detector = OnlineMMD(baseline.embeddings, ert=cfg.ert, window_size=cfg.window_size, n_bootstraps=cfg.n_bootstraps, seed=seed)
        except Exception:
            self.stats.calibration_failures += 1
            raise
        self.stats.calibrations += 1
        st.reference, st.detector, st.state, st.episode, st.below = baseline, detector, "ok", None, 0
        st.collected, st.collected_times = [], []
        w = cfg.window_size
        st.trace_ids, st.times, st.texts = [0] * w, [0] * w, [None] * w

    def _autosave(self, st: _Key) -> None:
        if self._dir is None or st.reference is None:
            return
        try:
            save_baseline(baseline_path(self._dir, st.key), st.reference)
        except OSError as exc:
            logger.warning("llm-telemetry drift: could not save the baseline of %s under %s: %s", st.key, self._dir, exc)

    def _window_test(self, st: _Key, n_permutations: int | None = None) -> PermutationTestResult | None:
        if st.detector is None or st.reference is None or st.detector.observed_in_window < 2:
            return None
        return permutation_test(st.reference.embeddings, st.detector.window_points(),
                                n_permutations=n_permutations or self._config.n_permutations, seed=self._config.seed)
