"""OpenTelemetry instrumentation of the Anthropic Python SDK (``anthropic >= 0.49``, native-tracing aware in 2.x).

Instruments ``messages.create`` (streamed or not), ``messages.parse`` and the ``messages.stream(...)``
helper, sync and async, on ``client.messages`` and ``client.beta.messages``: one GenAI CLIENT span per
call plus the GenAI client metrics. The SDK's own OpenTelemetry tracing (2.x) is folded into that span
instead of producing a second one (see `_native`).
Enabled by ``opentelemetry-instrument`` through the ``opentelemetry_instrumentor`` entry point, or::

    AnthropicInstrumentor().instrument(tracer_provider=..., meter_provider=...)

Nothing here imports ``anthropic`` until ``instrument()``: the entry point loads without the SDK.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from .._telemetry import build_telemetry
from .._wrap import async_wrapper, sync_wrapper

logger = logging.getLogger(__name__)

SCOPE = "llm_telemetry.instrumentation.anthropic"

_MESSAGES_MODULES = ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages")
_NATIVE_MODULE = "anthropic._base_client"
_NATIVE_FUNCTION = "start_api_call_span"


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Turns every Anthropic Messages call into one GenAI CLIENT span plus the GenAI client metrics."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("anthropic >= 0.49",)

    def _instrument(self, **kwargs: Any) -> None:
        import anthropic

        from ._message_stream import TracedAsyncMessageStreamManager, TracedMessageStreamManager, stream_helper_wrapper
        from ._messages import MessagesOperation
        from ._native import start_api_call_span_hook

        telemetry = build_telemetry(SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        operation = MessagesOperation((anthropic.Stream,), (anthropic.AsyncStream,))
        self._wrapped: list[tuple[Any, str]] = []
        targets: tuple[tuple[str, str, Any], ...] = (
            ("Messages", "create", sync_wrapper(operation, telemetry)),
            ("AsyncMessages", "create", async_wrapper(operation, telemetry)),
            ("Messages", "parse", sync_wrapper(operation, telemetry)),
            ("AsyncMessages", "parse", async_wrapper(operation, telemetry)),
            ("Messages", "stream", stream_helper_wrapper(operation, telemetry, TracedMessageStreamManager)),
            ("AsyncMessages", "stream", stream_helper_wrapper(operation, telemetry, TracedAsyncMessageStreamManager)),
        )
        for module_name in _MESSAGES_MODULES:  # ``client.messages`` and ``client.beta.messages``: same API
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                logger.debug("llm-telemetry: %s not present in this anthropic version", module_name)
                continue
            for cls_name, method, wrapper in targets:
                cls = getattr(module, cls_name, None)
                if cls is None or not hasattr(cls, method):  # e.g. ``parse`` is younger than 0.49
                    continue
                self._wrap(module, cls, cls_name, method, wrapper)
        native = importlib.import_module(_NATIVE_MODULE)
        if hasattr(native, _NATIVE_FUNCTION):  # SDKs without native tracing have nothing to fold in
            self._wrap(native, native, _NATIVE_FUNCTION, None, start_api_call_span_hook(telemetry.capture.on_span))

    def _wrap(self, module: Any, owner: Any, name: str, method: str | None, wrapper: Any) -> None:
        path = f"{name}.{method}" if method else name
        try:
            wrap_function_wrapper(module, path, wrapper)
            self._wrapped.append((owner, method or name))
        except Exception:
            logger.warning("llm-telemetry: could not instrument anthropic %s", path, exc_info=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, name in getattr(self, "_wrapped", []):
            unwrap(owner, name)
        self._wrapped = []


__all__ = ["SCOPE", "AnthropicInstrumentor"]
