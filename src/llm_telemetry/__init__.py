"""llm-telemetry: OpenTelemetry-native production monitoring for LLM applications.

Public API:
- `attribute` — put user / session / conversation / feature on GenAI spans (context manager, decorator).
- `GenAICall` — the record of one finished GenAI call that processors receive.
- `side_channel` — where our instrumentation hands finished records (with content) to processors.
- `guard` — screen an output with the safety patterns before serving it (imported on first use).
- `evaluate` — run a function over a golden dataset: scored table, eval spans and metrics.
- `feedback`, `feedback_report` — user feedback tied to its call (log record in the call's trace), rates.
- `session_event`, `session_report` — task completion, abandonment and turns per session.
- `remember_call` — the per-call hook that ties feedback by response id (the pipeline calls it).
- `add_validator`, `remove_validator` — output validators added at run time (besides the validators file).
- `quality_alerts` — the quality alerts currently firing in this process.
- `set_drift_baseline` — known-good outputs as a feature's drift reference (else the first N, or a file).
"""

from llm_telemetry.attribution import attribute, current_attribution
from llm_telemetry.record import GenAICall, StreamTimings
from llm_telemetry.side_channel import side_channel

__all__ = [
    "GenAICall",
    "StreamTimings",
    "add_validator",
    "attribute",
    "current_attribution",
    "evaluate",
    "feedback",
    "feedback_report",
    "guard",
    "quality_alerts",
    "remember_call",
    "remove_validator",
    "session_event",
    "session_report",
    "set_drift_baseline",
    "side_channel",
]
__version__ = "0.1.0"


# Lazy: `import llm_telemetry` must stay light (no RE2 / OTel SDK import) for apps that never use these.
_LAZY: dict[str, str] = {
    "guard": "llm_telemetry.processors.safety.guard_api",
    "evaluate": "llm_telemetry.processors.quality.evaluate",
    "feedback": "llm_telemetry.processors.quality.feedback",
    "feedback_report": "llm_telemetry.processors.quality.feedback",
    "remember_call": "llm_telemetry.processors.quality.feedback",
    "session_event": "llm_telemetry.processors.quality.sessions",
    "session_report": "llm_telemetry.processors.quality.sessions",
    "add_validator": "llm_telemetry.processors.quality.validator_set",
    "remove_validator": "llm_telemetry.processors.quality.validator_set",
    "quality_alerts": "llm_telemetry.processors.quality.enricher",
    "set_drift_baseline": "llm_telemetry.processors.quality.enricher",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'llm_telemetry' has no attribute {name!r}")
