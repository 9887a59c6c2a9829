"""OpenInference attributes for backends that read them (Arize Phoenix): the enricher ``openinference``.

Phoenix maps our ``gen_ai.*`` attributes to LLM/EMBEDDING spans with model and token counts, but reads
the prompt and answer only from OpenInference's ``input.value`` / ``output.value``, filters on
``metadata`` / ``tag.tags``, and files spans under the ``openinference.project.name`` resource attribute
(our configurator sets it to ``service.name``). This enricher adds, per call:

- ``openinference.span.kind`` (``LLM`` or ``EMBEDDING``), ``llm.model_name``, ``llm.provider``;
- ``llm.token_count.prompt`` / ``completion`` / ``total`` — only counts the provider reported: an
  estimate (a stream without usage) is never shown as a count;
- ``metadata`` (JSON: feature, user, session) and ``tag.tags`` (the feature), so attribution filters;
- with content capture on only: ``input.value`` (the semconv messages JSON) and ``output.value``.

Turn it off with ``LLM_TELEMETRY_PIPELINE_ENRICHERS`` (drop ``openinference``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import ContentCapture
from llm_telemetry.processors.base import EnricherContext, Enrichment
from llm_telemetry.record import GenAICall


class OpenInferenceEnricher:
    name = "openinference"

    def __init__(self, capture: ContentCapture = ContentCapture.NO_CONTENT, max_chars: int = 16384) -> None:
        self._content = capture.on_span
        self._max_chars = max_chars

    @classmethod
    def from_context(cls, context: EnricherContext) -> OpenInferenceEnricher:
        return cls(context.settings.content.capture, context.settings.content.max_chars)

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        out: dict[str, AttributeValue] = {
            a.OI_SPAN_KIND: "EMBEDDING" if call.operation == "embeddings" else "LLM",
            a.OI_PROVIDER: call.provider,
        }
        if call.model:
            out[a.OI_MODEL_NAME] = call.model
        prompt = call.input_tokens if not call.input_tokens_estimated else None
        completion = call.output_tokens if not call.output_tokens_estimated else None
        if prompt is not None:
            out[a.OI_TOKEN_COUNT_PROMPT] = prompt
        if completion is not None:
            out[a.OI_TOKEN_COUNT_COMPLETION] = completion
        if prompt is not None and completion is not None:
            out[a.OI_TOKEN_COUNT_TOTAL] = prompt + completion
        metadata = {k: v for k, v in (("feature", call.feature), ("user_id", call.user_id), ("session_id", call.session_id)) if v}
        if metadata:
            out[a.OI_METADATA] = json.dumps(metadata, ensure_ascii=False)
        if call.feature:
            out[a.OI_TAGS] = (call.feature,)
        if self._content:
            messages = list(call.input_messages or ())
            if call.system_instructions:
                messages.insert(0, {"role": "system", "parts": [{"type": "text", "content": call.system_instructions}]})
            if messages:
                out[a.OI_INPUT_VALUE] = json.dumps(messages, ensure_ascii=False, default=str)[: self._max_chars]
                out[a.OI_INPUT_MIME_TYPE] = "application/json"
            if call.output_text is not None:
                out[a.OI_OUTPUT_VALUE] = call.output_text[: self._max_chars]
                out[a.OI_OUTPUT_MIME_TYPE] = "text/plain"
        return Enrichment(out)
