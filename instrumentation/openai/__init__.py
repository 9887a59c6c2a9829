"""OpenTelemetry instrumentation of the OpenAI Python SDK (1.x, 2.x and 3.x where the API matches).

Instruments ``chat.completions.create`` / ``.parse``, ``responses.create`` / ``.parse`` and
``embeddings.create``, sync and async, streamed or not. The SDK's ``.stream()`` helpers call
``create`` underneath, so they are covered once, with no second span; their managers are proxied only
so that leaving the helper's ``with`` block ends the span (the helper closes the HTTP response itself).
Enabled by ``opentelemetry-instrument`` through the
``opentelemetry_instrumentor`` entry point, or by hand::

    OpenAIInstrumentor().instrument(tracer_provider=..., meter_provider=...)
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from types import ModuleType
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from llm_telemetry.instrumentation._patching import Patcher
from llm_telemetry.instrumentation._stream import stream_manager_wrapper
from llm_telemetry.instrumentation._telemetry import Telemetry, build_telemetry
from llm_telemetry.instrumentation._wrap import async_wrapper, sync_wrapper

logger = logging.getLogger(__name__)

SCOPE = "llm_telemetry.instrumentation.openai"

# (module, sync class, async class, operation factory name, methods)
_TARGETS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "AsyncCompletions", "chat", ("create", "parse")),
    ("openai.resources.responses.responses", "Responses", "AsyncResponses", "responses", ("create", "parse")),
    ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", "embeddings", ("create",)),
)
_STREAM_HELPERS: tuple[tuple[str, str, str], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "AsyncCompletions"),
    ("openai.resources.responses.responses", "Responses", "AsyncResponses"),
    ("openai.resources.beta.chat.completions", "Completions", "AsyncCompletions"),  # openai 1.x's beta helper
)


def _operation(kind: str) -> Any:
    if kind == "chat":
        from ._chat import ChatOperation

        return ChatOperation()
    if kind == "responses":
        from ._responses import ResponsesOperation

        return ResponsesOperation()
    from ._embeddings import EmbeddingsOperation

    return EmbeddingsOperation()


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Turns every OpenAI SDK call into one GenAI CLIENT span plus the GenAI client metrics."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai >= 1.66",)

    def _instrument(self, **kwargs: Any) -> None:
        # Nothing imports ``openai`` here: the wrappers go in when the app imports it (see `_patching`).
        telemetry = build_telemetry(SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._patcher = Patcher("openai")
        for target in _TARGETS:
            self._patcher.on_import(target[0], lambda module, target=target: self._patch(module, target, telemetry))
        for module_name, *classes in _STREAM_HELPERS:
            self._patcher.on_import(module_name, lambda module, classes=classes: self._patch_helpers(module, classes))

    def _patch(self, module: ModuleType, target: tuple[str, str, str, str, tuple[str, ...]], telemetry: Telemetry) -> None:
        _, sync_cls, async_cls, kind, methods = target
        operation = _operation(kind)
        for cls_name, factory in ((sync_cls, sync_wrapper), (async_cls, async_wrapper)):
            cls = getattr(module, cls_name, None)
            for method in methods:
                if cls is not None and hasattr(cls, method):  # older SDKs lack parse()
                    self._patcher.wrap(module, cls, f"{cls_name}.{method}", factory(operation, telemetry))

    def _patch_helpers(self, module: ModuleType, classes: list[str]) -> None:
        for cls_name in classes:
            cls = getattr(module, cls_name, None)
            if cls is not None and hasattr(cls, "stream"):
                self._patcher.wrap(module, cls, f"{cls_name}.stream", stream_manager_wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        patcher = getattr(self, "_patcher", None)
        if patcher is not None:
            patcher.unwrap_all()
