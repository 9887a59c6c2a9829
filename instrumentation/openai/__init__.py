"""OpenTelemetry instrumentation of the OpenAI Python SDK (1.x, 2.x and 3.x where the API matches).

Instruments ``chat.completions.create`` / ``.parse``, ``responses.create`` / ``.parse`` and
``embeddings.create``, sync and async, streamed or not. The SDK's ``.stream()`` helpers call
``create`` underneath, so they are covered once, with no second span. Enabled by ``opentelemetry-instrument`` through the
``opentelemetry_instrumentor`` entry point, or by hand::

    OpenAIInstrumentor().instrument(tracer_provider=..., meter_provider=...)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from llm_telemetry.instrumentation._telemetry import build_telemetry
from llm_telemetry.instrumentation._wrap import async_wrapper, sync_wrapper

logger = logging.getLogger(__name__)

SCOPE = "llm_telemetry.instrumentation.openai"

# (module, sync class, async class, operation factory name, methods)
_TARGETS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "AsyncCompletions", "chat", ("create", "parse")),
    ("openai.resources.responses.responses", "Responses", "AsyncResponses", "responses", ("create", "parse")),
    ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", "embeddings", ("create",)),
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
        telemetry = build_telemetry(SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._wrapped: list[tuple[Any, str]] = []
        for module_name, sync_cls, async_cls, kind, methods in _TARGETS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                logger.debug("llm-telemetry: %s not present in this openai version", module_name)
                continue
            operation = _operation(kind)
            for cls_name, factory in ((sync_cls, sync_wrapper), (async_cls, async_wrapper)):
                cls = getattr(module, cls_name, None)
                for method in methods:
                    if cls is None or not hasattr(cls, method):
                        continue  # older SDKs lack parse()
                    try:
                        wrap_function_wrapper(module, f"{cls_name}.{method}", factory(operation, telemetry))
                        self._wrapped.append((cls, method))
                    except Exception:
                        logger.warning("llm-telemetry: could not instrument openai %s.%s", cls_name, method, exc_info=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, method in getattr(self, "_wrapped", []):
            unwrap(cls, method)
        self._wrapped = []
