"""Change detectors: calibration against known values, false alarms at the configured rate, shifts caught."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_telemetry.processors.quality.change_detectors import (
    MeanMonitor,
    RateMonitor,
    beta_upper_quantile,
    gaussian_cusum_arl,
    gaussian_cusum_threshold,
    lattice_arl,
    rate_cusum_design,
)


def _siegmund(h: float, k: float) -> float:
    b, delta = h + 1.166, -k
    return (math.exp(-2 * delta * b) + 2 * delta * b - 1) / (2 * delta * delta)


def test_gaussian_arl_matches_the_published_value_and_siegmund():
    # Standard CUSUM table: h=5, k=0.5 has in-control ARL 930 (one-sided); shift of 1 sd: ARL 10.4.
    assert gaussian_cusum_arl(5.0, 0.5) == pytest.approx(930, rel=0.01)
    assert gaussian_cusum_arl(5.0, 0.5, shift=1.0) == pytest.approx(10.4, rel=0.03)
    assert gaussian_cusum_arl(5.0, 0.5) == pytest.approx(_siegmund(5.0, 0.5), rel=0.02)


def test_gaussian_threshold_reaches_the_requested_run_length():
    h = gaussian_cusum_threshold(0.5, 5000.0)  # from Siegmund's formula; checked with the exact chain
    assert gaussian_cusum_arl(h, 0.5) == pytest.approx(5000, rel=0.03)
    # Estimated baseline: the threshold is raised so the average false-alarm rate stays on target.
    assert gaussian_cusum_threshold(0.5, 5000.0, 200) > h


def test_lattice_arl_agrees_with_simulation():
    design = rate_cusum_design(0.05, 3.0, 300.0)
    rng = np.random.default_rng(7)
    lengths = []
    for _ in range(400):
        s, n = 0, 0
        while s < design.threshold:
            n += 1
            s = max(0, s + (design.up if rng.random() < 0.05 else -design.down))
        lengths.append(n)
    assert design.arl >= 300
    assert np.mean(lengths) == pytest.approx(lattice_arl(0.05, design.up, design.down, design.threshold), rel=0.15)


@pytest.mark.parametrize("p0", [0.002, 0.01, 0.05, 0.3])
def test_rate_design_is_calibrated_for_any_baseline(p0):
    design = rate_cusum_design(p0, 3.0, 10_000.0)
    assert 10_000 <= design.arl <= 40_000
    assert design.p1 > p0


def test_beta_quantiles_of_the_warmup_posterior():
    assert beta_upper_quantile(5, 500) > 5 / 500 > beta_upper_quantile(5, 500, 0.25)
    assert 0 < beta_upper_quantile(0, 500) < 0.005
    assert beta_upper_quantile(50, 500, 0.5) == pytest.approx(0.1, rel=0.02)


def test_rate_threshold_accounts_for_the_warmup_uncertainty():
    known = rate_cusum_design(0.011, 3.0, 10_000.0)
    estimated = rate_cusum_design(0.011, 3.0, 10_000.0, (5, 500))
    assert estimated.threshold > known.threshold and estimated.arl >= 10_000


def _run_length_rate(monitors, streams) -> tuple[int, int]:
    """(alerts, watched calls) over stationary streams; calls while in alert do not count as watched."""
    alerts = watched = 0
    for monitor, stream in zip(monitors, streams, strict=True):
        for i, value in enumerate(stream):
            if not monitor.warming_up and monitor.alerting is None:
                watched += 1
            event = monitor.update(value, i, i)
            if event is not None and event.kind == "alert":
                alerts += 1
    return alerts, watched


def test_mean_monitor_false_alarm_rate_matches_the_setting():
    ert, warmup = 1000.0, 200
    rng = np.random.default_rng(11)
    streams = [rng.lognormal(6.0, 0.5, warmup + 5_000).tolist() for _ in range(80)]
    monitors = [MeanMonitor(warmup=warmup, ert=ert) for _ in streams]
    alerts, watched = _run_length_rate(monitors, streams)
    observed = alerts / watched
    assert 0.6 / ert < observed < 1.4 / ert, f"{alerts} false alarms in {watched} calls at ert {ert:g}"


@pytest.mark.parametrize("p", [0.01, 0.2])
def test_rate_monitor_false_alarm_rate_matches_the_setting(p):
    ert, warmup = 1000.0, 500
    rng = np.random.default_rng(12)
    streams = [(rng.random(warmup + 10_000) < p).tolist() for _ in range(30)]
    monitors = [RateMonitor(warmup=warmup, ert=ert) for _ in streams]
    alerts, watched = _run_length_rate(monitors, streams)
    observed = alerts / watched
    # The threshold averages over the warm-up's uncertainty about the rate: on target over many keys.
    assert 0.6 / ert < observed < 1.3 / ert, f"{alerts} false alarms in {watched} calls at ert {ert:g}"


def test_mean_monitor_catches_halved_length_with_the_change_point_and_one_alert():
    rng = np.random.default_rng(21)
    monitor = MeanMonitor(warmup=1000, ert=10_000)
    values = rng.lognormal(6.0, 0.3, 2000).tolist() + (rng.lognormal(6.0, 0.3, 1000) / 2).tolist()
    events = [(i, e) for i, v in enumerate(values) if (e := monitor.update(v, 1_000 + i, 50_000 + i)) is not None]
    assert len(events) == 1, events  # once per episode: no flapping while the change lasts
    index, event = events[0]
    assert event.kind == "alert" and event.direction == "down"
    assert 2000 <= index < 2015, "a 2.3-sd shift is caught within a few calls"
    assert abs(event.change_trace_id - 52_000) <= 3 and event.change_time_ns == event.change_trace_id - 49_000
    assert event.before == pytest.approx(math.exp(6.0 + 0.045), rel=0.05)
    assert event.after == pytest.approx(event.before / 2, rel=0.3)


def test_mean_monitor_recovers_and_alerts_again_in_a_new_episode():
    rng = np.random.default_rng(22)
    monitor = MeanMonitor(warmup=300, ert=10_000)
    base = lambda n: rng.lognormal(6.0, 0.3, n).tolist()  # noqa: E731
    values = base(1000) + [v * 2 for v in base(300)] + base(300) + [v * 2 for v in base(300)]
    kinds = [(i, e.kind, e.direction) for i, v in enumerate(values) if (e := monitor.update(v, i, i)) is not None]
    assert [k[1:] for k in kinds] == [("alert", "up"), ("recovered", "up"), ("alert", "up")]
    assert 1300 <= kinds[1][0] < 1330 and 1600 <= kinds[2][0] < 1615


def test_rate_monitor_catches_refusals_rising_from_1_to_15_percent():
    rng = np.random.default_rng(31)
    delays = []
    for _ in range(20):
        monitor = RateMonitor(warmup=500, ert=10_000)
        hits = (rng.random(3000) < 0.01).tolist() + (rng.random(1000) < 0.15).tolist()
        events = [(i, e) for i, h in enumerate(hits) if (e := monitor.update(h, i, i)) is not None]
        alerts = [(i, e) for i, e in events if e.kind == "alert"]
        assert alerts and alerts[-1][0] >= 3000, "stationary part: no alarm here at ert 10,000 (seeded)"
        index, event = alerts[-1]
        delays.append(index - 3000)
        # A 1 % baseline: one normal refusal shortly before the change can open the excursion early.
        assert 2850 <= event.change_trace_id <= index and event.after > 0.05
    assert np.median(delays) < 60


def test_rate_monitor_catches_length_finish_reason_from_0_to_30_percent_and_recovers():
    rng = np.random.default_rng(32)
    monitor = RateMonitor(warmup=500, ert=10_000)
    hits = [False] * 2000 + (rng.random(500) < 0.3).tolist() + [False] * 500
    events = [(i, e) for i, h in enumerate(hits) if (e := monitor.update(h, i, i)) is not None]
    assert [(e.kind, e.direction) for _, e in events] == [("alert", "up"), ("recovered", "up")]
    (alert_at, alert), (recovered_at, _) = events
    assert 2000 <= alert_at < 2030 and alert.before == 0.0 and alert.change_trace_id >= 2000
    assert 2500 <= recovered_at < 2600


def test_rate_monitor_does_not_watch_a_rate_above_its_ceiling():
    monitor = RateMonitor(warmup=100, ert=1000)
    for i in range(400):
        assert monitor.update(i % 3 != 0, i, i) is None
    assert monitor.baseline == pytest.approx(0.66) and not monitor.watching


@pytest.mark.parametrize("p", [0.01, 0.05])
def test_rate_false_alarms_right_after_warmup_match_the_setting_exactly(p):
    """Exact (Markov chain) expectation over the warm-up's binomial count, for keys whose true rate is p.

    Simulating 1,000 checks per key needs thousands of keys to see ~0.1 alarms each; the lattice chain
    gives each warm-up outcome's run length exactly.
    """
    ert, warmup = 10_000.0, 500
    expected = 0.0
    for hits in range(60):
        weight = math.comb(warmup, hits) * p**hits * (1 - p) ** (warmup - hits)
        if weight < 1e-7:
            continue
        design = rate_cusum_design(round((hits + 0.5) / (warmup + 1), 6), 3.0, ert, (hits, warmup))
        expected += weight * min(1000 / lattice_arl(p, design.up, design.down, design.threshold), 1.0)
    assert 0.7 * 1000 / ert < expected < 1.4 * 1000 / ert
