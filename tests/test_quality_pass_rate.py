"""The pass-rate drop detector on both sides, with fixed seeds: the source story is caught within 50
affected outputs; a stationary stream raises no more false alarms than configured."""

from __future__ import annotations

import random
import statistics

import pytest
from _quality_story import story

from llm_telemetry import attributes as a
from llm_telemetry.processors.quality._cusum import average_run_length, design
from llm_telemetry.processors.quality.pass_rate import PassRateAlert, PassRateDetector, PassRateRecovery
from llm_telemetry.processors.quality.validator_set import ValidatorSet

T0 = 1_760_000_000_000_000_000  # ns
KEY = ("invoice-extraction", "date_consistency")


def trace(index: int) -> int:
    return 0xABC0000000000000 + index


def run_story(seed: int, good: int, affected: int, detector: PassRateDetector) -> tuple[list[PassRateAlert | PassRateRecovery], int | None]:
    """Replay the story through the default validator set and the detector; return the events and the
    number of affected outputs (after the silent update) seen when the first alert came."""
    validators = ValidatorSet(include_runtime=False)
    validators.add({"kind": "date_consistency", "name": "date_consistency"})
    events: list[PassRateAlert | PassRateRecovery] = []
    delay = None
    for index, call in enumerate(story(seed, good=good, affected=affected)):
        for result in validators.run("invoice-extraction", "gpt-4o-mini", call.prompt, call.output):
            event = detector.observe(("invoice-extraction", result.validator), result.passed, T0 + index * 10**9, trace(index))
            if event is not None:
                events.append(event)
                if delay is None and isinstance(event, PassRateAlert):
                    delay = index - good + 1
    return events, delay


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_source_story_is_caught_within_50_affected_outputs(seed: int) -> None:
    detector = PassRateDetector()  # the defaults: 200 baseline checks, one false alarm per 1e6 checks
    events, delay = run_story(seed, good=400, affected=300, detector=detector)
    assert delay is not None and 1 <= delay <= 50, delay
    alert = events[0]
    assert isinstance(alert, PassRateAlert) and len(events) == 1  # once per episode
    assert (alert.feature, alert.validator) == KEY
    # The estimated start is at (or just after) the silent update, not long before it.
    first_affected = int(alert.first_trace_id, 16) - trace(0)
    assert 400 <= first_affected < 400 + delay
    assert alert.start_time_ns == T0 + first_affected * 10**9
    assert alert.pass_rate_before > 0.95 and alert.pass_rate_after < 0.7
    assert alert.checks_before >= 390 and alert.checks_after == 400 + delay - first_affected
    before = [int(t, 16) - trace(0) for t in alert.example_trace_ids_before]
    assert len(before) == 3 and all(first_affected - 10 < index < first_affected for index in before)  # passes just before
    assert alert.example_trace_ids_after[0] == alert.first_trace_id
    assert all(int(t, 16) - trace(0) >= 400 for t in alert.example_trace_ids_after)
    assert detector.active_alerts() == [alert]
    attrs = alert.attributes()
    assert attrs[a.FEATURE] == "invoice-extraction" and attrs[a.EVALUATION_NAME] == "date_consistency"
    assert attrs[a.VALIDATION_FIRST_TRACE_ID] == alert.first_trace_id and len(alert.first_trace_id) == 32
    assert "pass rate dropped for feature 'invoice-extraction'" in alert.message()


def test_a_stationary_stream_with_a_2_percent_failure_rate_never_alerts_over_a_long_run() -> None:
    detector = PassRateDetector()
    events, _ = run_story(99, good=6000, affected=0, detector=detector)
    assert events == []
    status = detector.status(KEY)
    assert status is not None and status["phase"] == "monitoring" and status["checks"] >= 5000


@pytest.mark.parametrize(("p0", "target"), [(0.02, 300.0), (0.2, 500.0)])
def test_chart_run_length_matches_its_calibration(p0: float, target: float) -> None:
    """Simulated in-control run lengths of the designed chart average its computed ARL (exact Markov chain)."""
    chart = design(p0, p0 + 0.1, target)
    assert chart.arl0 >= target > average_run_length(p0, chart.up, chart.down, chart.threshold - 1)
    rng = random.Random(5)
    runs = []
    for _ in range(1500):
        statistic = steps = 0
        while statistic < chart.threshold:
            steps += 1
            statistic = statistic + chart.up if rng.random() < p0 else max(0, statistic - chart.down)
        runs.append(steps)
    mean = statistics.fmean(runs)
    assert abs(mean - chart.arl0) < 4 * statistics.stdev(runs) / len(runs) ** 0.5  # within 4 standard errors


def test_false_alarms_on_stationary_data_stay_within_the_configured_rate() -> None:
    """Many keys, each with its own estimated baseline: alarms per check at most the configured 1/500."""
    rng = random.Random(17)
    checks = alarms = 0
    detector = PassRateDetector(baseline_checks=200, false_alarm_checks=500)
    for key_index in range(40):
        key = ("feature", f"validator-{key_index}")
        for step in range(5000):
            event = detector.observe(key, rng.random() >= 0.02, T0 + step, step)
            checks += step >= 200
            alarms += isinstance(event, PassRateAlert)
    expected = checks / 500
    assert alarms <= expected, (alarms, expected)


def test_recovery_clears_the_episode_and_a_new_drop_alerts_again() -> None:
    rng = random.Random(23)
    detector = PassRateDetector(baseline_checks=100, false_alarm_checks=10_000)
    events: list[tuple[int, PassRateAlert | PassRateRecovery]] = []
    phases = [(300, 0.01), (200, 0.5), (400, 0.01), (200, 0.5)]
    step = 0
    for length, failure_rate in phases:
        for _ in range(length):
            event = detector.observe(("f", "v"), rng.random() >= failure_rate, T0 + step, trace(step))
            if event is not None:
                events.append((step, event))
            step += 1
    kinds = [type(event).__name__ for _, event in events]
    assert kinds == ["PassRateAlert", "PassRateRecovery", "PassRateAlert"]
    (alert_step, alert), (recovery_step, recovery), (second_step, second) = events
    assert 300 <= alert_step < 340 and 500 <= recovery_step < 600 and 900 <= second_step < 940
    assert isinstance(recovery, PassRateRecovery) and recovery.start_time_ns == alert.start_time_ns  # type: ignore[union-attr]
    assert 0.3 < recovery.pass_rate_during < 0.8 and recovery.attributes()[a.EVALUATION_NAME] == "v"
    assert "recovered" in recovery.message()
    assert isinstance(second, PassRateAlert) and second.checks_before < 500  # the new segment started at the recovery
    assert detector.active_alerts() == [second]


def test_memory_is_bounded_by_max_keys() -> None:
    detector = PassRateDetector(max_keys=50)
    for index in range(500):
        detector.observe((f"feature-{index}", "v"), True, T0, index)
    assert len(detector) == 50 and detector.evicted == 450
    assert detector.status(("feature-499", "v")) is not None and detector.status(("feature-0", "v")) is None


def test_a_validator_that_always_fails_is_not_monitored() -> None:
    detector = PassRateDetector(baseline_checks=50)
    for index in range(300):
        assert detector.observe(("f", "v"), index % 50 == 0, T0, index) is None
    assert detector.disarmed == 1 and detector.status(("f", "v"))["phase"] == "disarmed"  # type: ignore[index]


def test_observe_never_raises() -> None:
    detector = PassRateDetector()
    assert detector.observe(["unhashable"], True, T0, 1) is None  # type: ignore[arg-type]
