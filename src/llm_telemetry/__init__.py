"""llm-telemetry: OpenTelemetry-native production monitoring for LLM applications.

Public API:
- `attribute` — put user / session / conversation / feature on GenAI spans (context manager, decorator).
- `GenAICall` — the record of one finished GenAI call that processors receive.
- `side_channel` — where our instrumentation hands finished records (with content) to processors.
- `guard` — screen an output with the safety patterns before serving it (imported on first use).
"""

from llm_telemetry.attribution import attribute, current_attribution
from llm_telemetry.record import GenAICall, StreamTimings
from llm_telemetry.side_channel import side_channel

__all__ = ["GenAICall", "StreamTimings", "attribute", "current_attribution", "guard", "side_channel"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: `import llm_telemetry` must stay light (no RE2 / OTel SDK import) for apps that never guard.
    if name == "guard":
        from llm_telemetry.processors.safety.guard_api import guard

        return guard
    raise AttributeError(f"module 'llm_telemetry' has no attribute {name!r}")
