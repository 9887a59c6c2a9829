"""A local fake LLM provider speaking the real OpenAI and Anthropic wire formats (JSON and SSE).

Tests, the demo and benchmarks point the real SDKs at it (``base_url=provider.openai_base_url`` /
``provider.anthropic_base_url``) and script each answer with a `Behaviour`: text, chunking, time to
first token, stalls, errors, abrupt cuts and usage numbers. Run it standalone with
``python -m llm_telemetry.fake_provider``.
"""

from llm_telemetry.fake_provider.behaviour import BEHAVIOUR_HEADER, Behaviour
from llm_telemetry.fake_provider.openai_wire import embedding_vector
from llm_telemetry.fake_provider.server import FakeProvider, RecordedRequest

__all__ = ["BEHAVIOUR_HEADER", "Behaviour", "FakeProvider", "RecordedRequest", "embedding_vector"]
