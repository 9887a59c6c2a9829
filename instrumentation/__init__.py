"""Auto-instrumentation of the OpenAI and Anthropic SDKs.

One `BaseInstrumentor` per SDK (`llm_telemetry.instrumentation.openai.OpenAIInstrumentor`,
`llm_telemetry.instrumentation.anthropic.AnthropicInstrumentor`), registered under the
``opentelemetry_instrumentor`` entry point group so `opentelemetry-instrument` enables them. The shared
machinery — the life cycle of one call's span (`_call`), streamed-response timing (`_stream`,
`_timing`), content shaping (`_content`) and the metric instruments (`_telemetry`) — lives here so
both SDKs measure and record the same way.
"""

from ._lifecycle import flush_abandoned

__all__ = ["flush_abandoned"]
