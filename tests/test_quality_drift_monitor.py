"""DriftMonitor end to end with the offline hashing embedder: seeded text streams on both sides of a change."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from llm_telemetry.processors.quality.drift import DriftConfig, DriftMonitor
from llm_telemetry.processors.quality.drift_baseline import BaselineFileError, baseline_path
from llm_telemetry.processors.quality.drift_report import DriftAlert, DriftDecision, DriftRecovery, change_split
from llm_telemetry.processors.quality.embedders import HashingEmbedder
from llm_telemetry.processors.quality.mmd import permutation_test

KEY = ("invoice-extraction", "gpt-4o")
NAMES = ["Acme Ltd", "Globex", "Initech", "Umbrella Corp", "Stark Industries", "Wayne Enterprises"]
ITEMS = ["consulting", "hardware", "software licences", "travel", "training", "support"]
SEC = 1_000_000_000


def invoice(rnd: random.Random) -> str:
    return (f"Invoice from {rnd.choice(NAMES)} for {rnd.choice(ITEMS)}, total {rnd.randint(100, 9999)}."
            f"{rnd.randint(0, 99):02d} EUR, due in {rnd.choice([14, 30, 60])} days.")


def refusal(rnd: random.Random) -> str:
    return f"I'm sorry, but I can't help with extracting data from this document. Please send a clearer scan of page {rnd.randint(1, 9)}."


def iso_date(rnd: random.Random, *, swapped: bool, ambiguous_only: bool = False) -> str:
    """The source story as a structured output: DD/MM/YYYY documents, ISO dates out; after the change day and
    month come back transposed."""
    day, month = rnd.randint(1, 12 if ambiguous_only else 28), rnd.randint(1, 12)
    first, second = (day, month) if swapped else (month, day)
    return f'{{"invoice_date": "2025-{first:02d}-{second:02d}", "currency": "EUR"}}'


def feed(monitor: DriftMonitor, texts: Iterable[str], start: int = 1, key=KEY) -> list[DriftDecision]:
    """Observe texts as outputs with trace id i and end time i seconds; flush at the end."""
    decisions: list[DriftDecision] = []
    i = start
    for i, text in enumerate(texts, start=start):
        decisions += monitor.observe(key, text, i * SEC, i)
    return decisions + monitor.flush()


def stream(gen: Callable[[random.Random], str], rnd: random.Random, n: int) -> list[str]:
    return [gen(rnd) for _ in range(n)]


def alerts(decisions: list[DriftDecision]) -> list[DriftAlert]:
    return [d.alert for d in decisions if d.alert]


def recoveries(decisions: list[DriftDecision]) -> list[DriftRecovery]:
    return [d.recovery for d in decisions if d.recovery]


CONFIG = DriftConfig(reference_size=200, window_size=20, ert=2_500, nearest_k=3)


def test_stationary_stream_raises_no_alert():
    rnd = random.Random(1)
    monitor = DriftMonitor(HashingEmbedder(), CONFIG)
    decisions = feed(monitor, stream(invoice, rnd, 200 + 400))
    assert [d.state for d in decisions[:199]] == ["collecting"] * 199
    monitored = [d for d in decisions if d.score is not None]
    assert len(monitored) == 400 and monitored[-1].t == 400
    assert alerts(decisions) == [] and monitor.state(KEY) == "ok"
    assert all(d.score <= d.threshold for d in monitored)
    assert monitor.stats.calibrations == 1 and monitor.stats.embedded == 600


def test_template_change_is_caught_with_its_evidence_and_recovers_once():
    rnd = random.Random(2)
    monitor = DriftMonitor(HashingEmbedder(), CONFIG)
    before = feed(monitor, stream(invoice, rnd, 300))  # 200 reference + 100 monitored
    assert alerts(before) == []
    during = feed(monitor, stream(refusal, rnd, 60), start=301)
    (alert,) = alerts(during)  # once per episode, though every later window is drifted too
    assert 301 <= alert.detected_trace_id <= 301 + 10, "caught within 10 changed outputs"
    assert alert.score > alert.threshold and alert.p_value is not None and alert.p_value < 0.01
    assert alert.baseline.source == "first_n" and alert.baseline.size == 200
    assert (alert.baseline.start_time_ns, alert.baseline.end_time_ns) == (1 * SEC, 200 * SEC)
    assert alert.window.size == 20 and alert.window.observed == 20
    assert alert.window.end_time_ns == alert.detected_time_ns
    assert not alert.start_before_window and alert.estimated_start_trace_id == 301
    assert len(alert.nearest) == 3 and all(ex.trace_id >= 301 for ex in alert.nearest)
    assert all(ex.text is None for ex in alert.nearest), "texts only with keep_texts"
    assert monitor.state(KEY) == "alert"
    after = feed(monitor, stream(invoice, rnd, 120), start=361)
    (recovery,) = recoveries(after)
    assert recovery.alert_time_ns == alert.detected_time_ns
    assert recovery.recovered_trace_id > 361 + 20  # the window must first flush out the refusals
    assert monitor.state(KEY) == "ok" and alerts(after) == []
    assert (monitor.stats.alerts, monitor.stats.recoveries) == (1, 1)


def test_alert_quotes_texts_only_with_keep_texts():
    rnd = random.Random(3)
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=200, window_size=20, ert=2_500, keep_texts=True))
    (alert,) = alerts(feed(monitor, stream(invoice, rnd, 250) + stream(refusal, rnd, 30)))
    assert all(ex.text and ex.text.startswith("I'm sorry") for ex in alert.nearest)


def test_source_story_transposed_iso_dates_are_seen_when_they_change_the_output_mix():
    """Structured outputs, days 1-28: after the change the month slot holds 13-28, which never occurred before.
    The hashing embedder sees those digits (character n-grams, word bigrams) and the drift alert comes
    within the 50 affected outputs the issue targets."""
    rnd = random.Random(4)
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=500, window_size=50, ert=2_500))
    decisions = feed(monitor, [iso_date(rnd, swapped=False) for _ in range(700)])
    assert alerts(decisions) == []
    decisions = feed(monitor, [iso_date(rnd, swapped=True) for _ in range(100)], start=701)
    (alert,) = alerts(decisions)
    assert alert.detected_trace_id - 700 <= 50


def test_source_story_transposition_of_ambiguous_dates_is_invisible_to_output_drift():
    """The honest limit: when every date is ambiguous (day ≤ 12) and days and months are equally likely, the
    transposed outputs have exactly the distribution of the correct ones. No detector that looks at outputs
    alone can see it (here: the batch test finds nothing, while it plainly sees the days-1-28 case); the
    date-consistency validator does, because it compares each output with its input."""
    rnd = random.Random(5)
    emb = HashingEmbedder()

    def batch_p(ambiguous_only: bool) -> float:
        correct = emb.embed([iso_date(rnd, swapped=False, ambiguous_only=ambiguous_only) for _ in range(300)])
        transposed = emb.embed([iso_date(rnd, swapped=True, ambiguous_only=ambiguous_only) for _ in range(300)])
        return permutation_test(correct, transposed, n_permutations=500, seed=0).p_value

    assert batch_p(ambiguous_only=True) > 0.05
    assert batch_p(ambiguous_only=False) < 0.01


def test_batches_embed_on_size_or_flush_and_skip_empty_outputs():
    rnd = random.Random(6)
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=41, window_size=20, batch_size=8, max_delay_s=3600))
    returned = [len(monitor.observe(KEY, invoice(rnd), i * SEC, i)) for i in range(1, 8)]
    assert returned == [0] * 7 and monitor.pending == 7
    assert monitor.observe(KEY, "   ", 8 * SEC, 8) == [] and monitor.observe(KEY, None, 8 * SEC, 8) == []
    assert len(monitor.observe(KEY, invoice(rnd), 9 * SEC, 9)) == 8 and monitor.pending == 0
    monitor.observe(KEY, invoice(rnd), 10 * SEC, 10)
    assert [d.trace_id for d in monitor.flush()] == [10]
    assert (monitor.stats.observed, monitor.stats.skipped_empty, monitor.stats.embedded) == (11, 2, 9)


def test_zero_max_delay_embeds_every_output_at_once():
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=41, window_size=20, max_delay_s=0))
    assert len(monitor.observe(KEY, "hello", SEC, 1)) == 1


class BrokenEmbedder:
    """An app-supplied embedder whose backend is down."""

    name = "broken"
    dim = 8

    def embed(self, texts: list[str]) -> np.ndarray:
        raise ConnectionError("embedding service unreachable")


def test_embedder_failure_is_counted_not_raised(caplog):
    monitor = DriftMonitor(BrokenEmbedder(), DriftConfig(reference_size=41, window_size=20, batch_size=2))
    assert monitor.observe(KEY, "a", SEC, 1) == [] and monitor.observe(KEY, "b", SEC, 2) == []
    assert monitor.stats.embed_failures == 2 and monitor.stats.embedded == 0
    assert "ConnectionError" in caplog.text and "2 outputs dropped" in caplog.text


def test_keys_are_capped_least_recently_seen_first():
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=41, window_size=20, max_keys=2, max_delay_s=0))
    for key in [("a", "m"), ("b", "m"), ("a", "m"), ("c", "m")]:
        monitor.observe(key, "some output", SEC, 1)
    assert monitor.keys() == [("a", "m"), ("c", "m")]
    assert monitor.stats.evicted_keys == 1


def test_set_baseline_monitors_at_once_and_batch_checks_give_p_values():
    rnd = random.Random(7)
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=500, window_size=20, ert=2_500, batch_check_every=20))
    info = monitor.set_baseline(KEY, stream(invoice, rnd, 200), end_times_ns=[i * SEC for i in range(1, 201)])
    assert (info.source, info.size, info.start_time_ns, info.end_time_ns) == ("set_baseline", 200, SEC, 200 * SEC)
    decisions = feed(monitor, stream(invoice, rnd, 40), start=201)
    assert [d.t for d in decisions if d.p_value is not None] == [20, 40]
    assert all(d.p_value > 0.01 for d in decisions if d.p_value is not None)
    result = monitor.check(KEY)
    assert result is not None and result.n_reference == 200 and result.n_test == 20
    with pytest.raises(ValueError, match=r"3 non-empty texts, the drift window of 20 needs at least 41"):
        monitor.set_baseline(KEY, ["a", "b", "", "c"])


def test_baseline_round_trips_through_a_file_and_checks_the_embedding_space(tmp_path):
    rnd = random.Random(8)
    config = DriftConfig(reference_size=100, window_size=20, ert=2_500)
    first = DriftMonitor(HashingEmbedder(), config, baseline_dir=tmp_path)
    feed(first, stream(invoice, rnd, 100))
    saved = baseline_path(tmp_path, KEY)
    assert saved.exists(), "a baseline learned from traffic is saved under baseline_dir"

    restarted = DriftMonitor(HashingEmbedder(), config, baseline_dir=tmp_path)
    decisions = feed(restarted, stream(invoice, rnd, 5))
    assert all(d.state == "ok" and d.score is not None for d in decisions), "no re-learning after a restart"
    assert restarted.baseline(KEY).source == f"file:{saved}"
    assert (restarted.baseline(KEY).start_time_ns, restarted.baseline(KEY).end_time_ns) == (SEC, 100 * SEC)

    other_space = DriftMonitor(HashingEmbedder(seed=1), config)
    with pytest.raises(BaselineFileError, match=r"made by embedder 'hashing-v1:dim=256:seed=0.*monitor uses 'hashing-v1:dim=256:seed=1"):
        other_space.load_baseline(KEY, saved)
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.ones((100, 64), dtype=np.float32))
    with pytest.raises(BaselineFileError, match=r"narrow.npy.*64-dimensional, the embedder .* makes 256"):
        other_space.load_baseline(KEY, narrow)
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not numpy")
    with pytest.raises(BaselineFileError, match=r"garbage.npz.*cannot read it"):
        other_space.load_baseline(KEY, garbage)

    # A bad file under baseline_dir does not break the stream: counted, and the key learns from traffic.
    garbage.replace(baseline_path(tmp_path, ("other", "m")))
    feed(restarted, ["some output"], key=("other", "m"))
    assert restarted.stats.baseline_file_errors == 1 and restarted.state(("other", "m")) == "collecting"


def test_rebaseline_learns_the_reference_again():
    rnd = random.Random(9)
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=41, window_size=20, ert=1000))
    feed(monitor, stream(invoice, rnd, 45))
    assert monitor.state(KEY) == "ok"
    monitor.rebaseline(KEY)
    assert monitor.state(KEY) == "collecting" and monitor.baseline(KEY) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reference_size": 30, "window_size": 20}, r"reference_size \(30\) must be at least 2·window_size \+ 1 = 41"),
    ({"ert": 1}, "ert must be > 1"),
    ({"window_size": 1.5}, "window_size must be an integer"),
    ({"max_keys": 0}, "max_keys must be an integer ≥ 1"),
    ({"max_delay_s": float("nan")}, "max_delay_s must be a number"),
])
def test_config_errors_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DriftConfig(**kwargs)


def test_change_split_finds_a_clear_step_and_admits_when_there_is_none():
    rng = np.random.default_rng(10)
    step = np.concatenate([rng.normal(0, 0.1, 30), rng.normal(1, 0.1, 20)])
    assert change_split(step) == (30, False)
    assert change_split(rng.normal(0, 0.1, 50)) == (0, True)


def test_a_reference_of_identical_outputs_calibrates_and_still_sees_a_change() -> None:
    """A feature that always answers the same text: calibration must not fail (it used to raise IndexError)."""
    monitor = DriftMonitor(HashingEmbedder(), DriftConfig(reference_size=60, window_size=10, ert=50, batch_size=10, seed=3))
    key = ("yes-feature", "m")
    decisions = []
    for i in range(80):
        decisions += monitor.observe(key, "yes", 1_000 + i, trace_id=i + 1)
    decisions += monitor.flush()
    assert monitor.stats.calibration_failures == 0
    assert not any(d.alert for d in decisions)
    for i in range(40):
        decisions += monitor.observe(key, f"I cannot help with request number {i} today, sorry.", 2_000 + i, trace_id=100 + i)
    decisions += monitor.flush()
    assert any(d.alert for d in decisions)
