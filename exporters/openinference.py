"""OpenInference attributes for backends that read them (Arize Phoenix): the enricher ``openinference``.

Phoenix maps our ``gen_ai.*`` attributes to LLM/EMBEDDING spans with model and token counts, but reads
the prompt and answer only from OpenInference's ``input.value`` / ``output.value``, filters on
``metadata`` / ``tag.tags``, and files spans under the ``openinference.project.name`` resource attribute
(`with_project_name`: our configurator and the demo set it to ``service.name``). This enricher adds,
per call:

- ``openinference.span.kind`` (``LLM`` or ``EMBEDDING``), ``llm.model_name``, ``llm.provider`` (and
  ``embedding.model_name`` on embeddings);
- ``llm.token_count.prompt`` / ``completion`` / ``total`` — only counts the provider reported: an
  estimate (a stream without usage) is never shown as a count (nor is it in ``gen_ai.usage.*``, from
  which Phoenix would derive one);
- ``metadata`` (JSON: feature, user, session) and ``tag.tags`` (the feature), so attribution filters;
- with content capture on only: ``input.value`` (the semconv messages JSON) and ``output.value``, and
  the texts of an embeddings call (``embedding.embeddings.N.embedding.text``, the first
  ``MAX_EMBEDDING_TEXTS``).

Turn it off with ``LLM_TELEMETRY_PIPELINE_ENRICHERS`` (drop ``openinference``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import ContentCapture
from llm_telemetry.processors.base import EnricherContext, Enrichment
from llm_telemetry.record import GenAICall

MAX_EMBEDDING_TEXTS = 16
"""Embedding inputs shown per span: a batch of thousands would blow the SDK's attribute limit (128)."""


def with_project_name(resource: Resource) -> Resource:
    """``resource`` plus ``openinference.project.name`` = its ``service.name``, unless it names a project already.

    Phoenix files every span under that resource attribute and ignores ``service.name``: without it,
    all services land in its ``default`` project. A project named in ``OTEL_RESOURCE_ATTRIBUTES``
    (``openinference.project.name=…``) wins.
    """
    service = resource.attributes.get(SERVICE_NAME)
    if a.OI_PROJECT_NAME in resource.attributes or not service:
        return resource
    return resource.merge(Resource({a.OI_PROJECT_NAME: str(service)}))


class OpenInferenceEnricher:
    name = "openinference"

    def __init__(self, capture: ContentCapture = ContentCapture.NO_CONTENT, max_chars: int = 16384) -> None:
        self._content = capture.on_span
        self._max_chars = max_chars

    @classmethod
    def from_context(cls, context: EnricherContext) -> OpenInferenceEnricher:
        return cls(context.settings.content.capture, context.settings.content.max_chars)

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        embeddings = call.operation == "embeddings"
        out: dict[str, AttributeValue] = {
            a.OI_SPAN_KIND: "EMBEDDING" if embeddings else "LLM",
            a.OI_PROVIDER: call.provider,
        }
        if call.model:
            out[a.OI_MODEL_NAME] = call.model
            if embeddings:
                out[a.OI_EMBEDDING_MODEL_NAME] = call.model
        prompt = call.input_tokens if not call.input_tokens_estimated else None
        completion = call.output_tokens if not call.output_tokens_estimated else None
        if prompt is not None:
            out[a.OI_TOKEN_COUNT_PROMPT] = prompt
        if completion is not None:
            out[a.OI_TOKEN_COUNT_COMPLETION] = completion
        if prompt is not None and (completion is not None or embeddings):  # an embedding has no output tokens
            out[a.OI_TOKEN_COUNT_TOTAL] = prompt + (completion or 0)
        metadata = {k: v for k, v in (("feature", call.feature), ("user_id", call.user_id), ("session_id", call.session_id)) if v}
        if metadata:
            out[a.OI_METADATA] = json.dumps(metadata, ensure_ascii=False)
        if call.feature:
            out[a.OI_TAGS] = (call.feature,)
        if self._content:
            self._add_content(call, embeddings, out)
        return Enrichment(out)

    def _add_content(self, call: GenAICall, embeddings: bool, out: dict[str, AttributeValue]) -> None:
        messages = list(call.input_messages or ())
        if call.system_instructions:
            messages.insert(0, {"role": "system", "parts": [{"type": "text", "content": call.system_instructions}]})
        if messages:
            out[a.OI_INPUT_VALUE] = json.dumps(messages, ensure_ascii=False, default=str)[: self._max_chars]
            out[a.OI_INPUT_MIME_TYPE] = "application/json"
        if call.output_text is not None:
            out[a.OI_OUTPUT_VALUE] = call.output_text[: self._max_chars]
            out[a.OI_OUTPUT_MIME_TYPE] = "text/plain"
        if embeddings:
            for index, text in enumerate(_texts(call.input_messages)[:MAX_EMBEDDING_TEXTS]):
                out[a.OI_EMBEDDING_TEXT.format(index=index)] = text[: self._max_chars]


def _texts(messages: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The text of each input message (an embeddings call has one message per input)."""
    texts = []
    for message in messages or ():
        parts = message.get("parts") or ()
        text = "".join(str(p.get("content", "")) for p in parts if isinstance(p, Mapping) and p.get("type") == "text")
        texts.append(text)
    return texts
