"""``llm-telemetry eval`` and ``canary``: the real SDKs against the fake provider, the source's date transposition."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _eval_helpers import DATES_YAML, children_of, eval_events

from llm_telemetry import attributes as a
from llm_telemetry.cli import build_parser, main
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.processors.quality.canary import Canary, CanaryState
from llm_telemetry.processors.quality.eval_cli import Telemetry, canary_command, eval_command, parse_every
from llm_telemetry.processors.quality.eval_report import CaseResult, EvalReport


def telemetry(t: Any) -> Telemetry:
    return Telemetry(t.tracer_provider, t.meter_provider, t.logger_provider)


def test_eval_json_against_the_fake_provider(fake_provider: Any, write_dataset: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake_provider.set_default(Behaviour(responder="iso_dates"))
    code = main(["eval", str(write_dataset(DATES_YAML)), "--model", "gpt-4o-mini", "--base-url", fake_provider.openai_base_url, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["dataset"], out["passed"], out["total"]) == ("invoice-dates", 3, 3)
    assert [c["output"] for c in out["cases"]] == ["2025-04-03", "2025-03-25", "2024-11-07"]
    assert all(c["response_id"].startswith("chatcmpl-") for c in out["cases"])


def test_eval_table_names_the_transposed_dates_and_exits_1(fake_provider: Any, write_dataset: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake_provider.set_default(Behaviour(responder="iso_dates_transposed"))
    code = main(["eval", str(write_dataset(DATES_YAML)), "--model", "claude-test-model", "--base-url", fake_provider.anthropic_base_url])
    table = capsys.readouterr().out
    assert code == 1
    assert "evaluate invoice-dates (anthropic claude-test-model at http://127.0.0.1" in table
    assert "└ exact: expected '2025-04-03', got '2025-03-04'" in table
    assert "└ exact: expected '2024-11-07', got '2024-07-11'" in table
    assert "passed 1/3 (33.3%)" in table
    assert fake_provider.last_request.path == "/v1/messages"


def test_eval_spans_parent_the_sdk_calls(fake_provider: Any, eval_telemetry: Any, write_dataset: Any) -> None:
    fake_provider.set_default(Behaviour(responder="iso_dates"))
    args = build_parser().parse_args(["eval", str(write_dataset(DATES_YAML)), "--model", "gpt-4o-mini",
                                      "--base-url", fake_provider.openai_base_url, "--concurrency", "2", "--json"])
    assert eval_command(args, telemetry(eval_telemetry)) == 0
    spans = eval_telemetry.spans()
    (run_span,) = eval_telemetry.spans("evaluate invoice-dates")
    case_spans = children_of(spans, run_span)
    assert len(case_spans) == 3
    for case_span in case_spans:
        (chat,) = children_of(spans, case_span)
        assert chat.name == "chat gpt-4o-mini"
        assert chat.attributes[a.FEATURE] == "eval:invoice-dates"  # eval traffic is apart from production features
        assert eval_events(case_span)["exact"][a.EVALUATION_SCORE_LABEL] == "pass"


def test_eval_bad_dataset_exits_2_naming_the_line(write_dataset: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_dataset("cases:\n  - id: a\n    input: x\n    expectd: y\n")
    assert main(["eval", str(path), "--model", "m"]) == 2
    assert f"{path}:4: unknown case key 'expectd'" in capsys.readouterr().err


def test_parse_every() -> None:
    assert [parse_every(t) for t in ("30s", "15m", "1h", "1d", "90", "1.5h")] == [30, 900, 3600, 86400, 90, 5400]
    for bad in ("0s", "soon", "1w", "-5m"):
        with pytest.raises(Exception, match="--every"):
            parse_every(bad)


# --- canary -------------------------------------------------------------------------------------------


def canary_args(path: Path, fake_provider: Any, state: Path, *extra: str) -> Any:
    return build_parser().parse_args(["canary", str(path), "--model", "gpt-4o-mini", "--base-url", fake_provider.openai_base_url,
                                      "--state", str(state), "--once", *extra])


def test_canary_alerts_on_the_date_transposition_naming_the_cases(
    fake_provider: Any, eval_telemetry: Any, write_dataset: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    dataset, state = write_dataset(DATES_YAML), tmp_path / "canary.json"
    tel = telemetry(eval_telemetry)

    fake_provider.set_default(Behaviour(responder="iso_dates"))
    assert canary_command(canary_args(dataset, fake_provider, state), tel) == 0
    assert "first run, baseline recorded (pass rate 100.0%)" in capsys.readouterr().out
    baseline = json.loads(state.read_text())
    assert baseline["last_good"]["cases"]["inv-0304"]["output"] == "2025-04-03"

    # The silent model update: day and month swapped wherever both are <= 12.
    fake_provider.set_default(Behaviour(responder="iso_dates_transposed"))
    assert canary_command(canary_args(dataset, fake_provider, state), tel) == 1
    out = capsys.readouterr().out
    assert "llm-telemetry canary ALERT: invoice-dates (openai gpt-4o-mini at" in out
    assert "pass rate 100.0% -> 33.3%, 2 case(s) changed:" in out
    assert "- inv-0304: score 1.00 -> 0.00, failed exact; expected '2025-04-03', got '2025-03-04' (last good run: '2025-04-03')" in out
    assert "- inv-0711: score 1.00 -> 0.50, failed exact; expected '2024-11-07', got '2024-07-11' (last good run: '2024-11-07')" in out
    assert "inv-2503" not in out  # 25/03 cannot be read the other way round: unchanged

    (record,) = eval_telemetry.logs(a.EVENT_CANARY_REGRESSION)
    assert record.severity_text == "WARN"
    assert list(record.attributes[a.CANARY_CHANGED_CASES]) == ["inv-0304", "inv-0711"]
    assert (record.attributes[a.CANARY_PASS_RATE_BEFORE], round(record.attributes[a.CANARY_PASS_RATE_AFTER], 3)) == (1.0, 0.333)
    assert "expected '2025-04-03', got '2025-03-04'" in record.body
    runs = eval_telemetry.spans("evaluate invoice-dates")
    assert record.trace_id == runs[-1].context.trace_id and record.span_id == runs[-1].context.span_id
    assert eval_telemetry.points(a.METRIC_CANARY_ALERTS) == [({a.EVAL_DATASET: "invoice-dates"}, 1)]
    assert eval_telemetry.points(a.METRIC_CANARY_REGRESSED) == [({a.EVAL_DATASET: "invoice-dates"}, 1)]
    assert json.loads(state.read_text())["last_good"]["cases"]["inv-0304"]["output"] == "2025-04-03"  # baseline kept

    # Same regression again: one alert per episode.
    assert canary_command(canary_args(dataset, fake_provider, state), tel) == 1
    assert "still 2 case(s) below the last good run (alert already raised)" in capsys.readouterr().out
    assert len(eval_telemetry.logs(a.EVENT_CANARY_REGRESSION)) == 1

    # The provider rolls back: recovered, gauge back to 0.
    fake_provider.set_default(Behaviour(responder="iso_dates"))
    assert canary_command(canary_args(dataset, fake_provider, state), tel) == 0
    assert "llm-telemetry canary recovered: invoice-dates" in capsys.readouterr().out
    assert len(eval_telemetry.logs(a.EVENT_CANARY_RECOVERED)) == 1
    assert eval_telemetry.points(a.METRIC_CANARY_REGRESSED) == [({a.EVAL_DATASET: "invoice-dates"}, 0)]


def test_canary_state_file_errors_exit_2(fake_provider: Any, write_dataset: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "broken.json"
    state.write_text("{not json")
    assert main(["canary", str(write_dataset(DATES_YAML)), "--model", "m", "--state", str(state), "--once"]) == 2
    assert f"canary state {state}: cannot read it" in capsys.readouterr().err
    CanaryState("other-dataset", "t").save(state)
    assert main(["canary", str(write_dataset(DATES_YAML)), "--model", "m", "--state", str(state), "--once"]) == 2
    assert "belongs to dataset 'other-dataset', not 'invoice-dates'" in capsys.readouterr().err


def test_canary_runs_on_a_schedule_until_stopped(eval_telemetry: Any, tmp_path: Path) -> None:
    runs: list[float] = []
    stop = threading.Event()

    def run_eval() -> EvalReport:
        runs.append(time.monotonic())
        if len(runs) == 3:
            stop.set()
        return EvalReport("sched", [CaseResult("c", "ok", "ok")], time.time(), 0.0)

    canary = Canary(run_eval, "sched", "fn", tmp_path / "s.json", meter_provider=eval_telemetry.meter_provider,
                    logger_provider=eval_telemetry.logger_provider, out=io.StringIO())
    worker = threading.Thread(target=canary.run_forever, args=(0.05, stop))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive() and len(runs) == 3
    assert runs[2] - runs[0] >= 0.09  # paced by the period, not back to back
    assert json.loads((tmp_path / "s.json").read_text())["last_good"]["pass_rate"] == 1.0
