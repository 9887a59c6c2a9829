"""llm-telemetry: OpenTelemetry-native production monitoring for LLM applications.

Public API:
- `attribute` — put user / session / conversation / feature on GenAI spans (context manager, decorator).
- `GenAICall` — the record of one finished GenAI call that processors receive.
- `side_channel` — where our instrumentation hands finished records (with content) to processors.
"""

from llm_telemetry.attribution import attribute, current_attribution
from llm_telemetry.record import GenAICall, StreamTimings
from llm_telemetry.side_channel import side_channel

__all__ = ["GenAICall", "StreamTimings", "attribute", "current_attribution", "side_channel"]
__version__ = "0.1.0"
