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

import logging
from collections.abc import Collection
from types import ModuleType
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from .._patching import Patcher
from .._telemetry import Telemetry, build_telemetry
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
        # Nothing imports ``anthropic`` here: the wrappers go in when the app imports it (see `_patching`).
        telemetry = build_telemetry(SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._patcher = Patcher("anthropic")
        for module_name in _MESSAGES_MODULES:  # ``client.messages`` and ``client.beta.messages``: same API
            self._patcher.on_import(module_name, lambda module: self._patch_messages(module, telemetry))
        self._patcher.on_import(_NATIVE_MODULE, lambda module: self._patch_native(module, telemetry))

    def _patch_messages(self, module: ModuleType, telemetry: Telemetry) -> None:
        import anthropic

        from ._message_stream import TracedAsyncMessageStreamManager, TracedMessageStreamManager, stream_helper_wrapper
        from ._messages import MessagesOperation

        operation = MessagesOperation((anthropic.Stream,), (anthropic.AsyncStream,))
        targets: tuple[tuple[str, str, Any], ...] = (
            ("Messages", "create", sync_wrapper(operation, telemetry)),
            ("AsyncMessages", "create", async_wrapper(operation, telemetry)),
            ("Messages", "parse", sync_wrapper(operation, telemetry)),
            ("AsyncMessages", "parse", async_wrapper(operation, telemetry)),
            ("Messages", "stream", stream_helper_wrapper(operation, telemetry, TracedMessageStreamManager)),
            ("AsyncMessages", "stream", stream_helper_wrapper(operation, telemetry, TracedAsyncMessageStreamManager)),
        )
        for cls_name, method, wrapper in targets:
            cls = getattr(module, cls_name, None)
            if cls is not None and hasattr(cls, method):  # e.g. ``parse`` is younger than 0.49
                self._patcher.wrap(module, cls, f"{cls_name}.{method}", wrapper)

    def _patch_native(self, module: ModuleType, telemetry: Telemetry) -> None:
        from ._native import start_api_call_span_hook

        if hasattr(module, _NATIVE_FUNCTION):  # SDKs without native tracing have nothing to fold in
            self._patcher.wrap(module, module, _NATIVE_FUNCTION, start_api_call_span_hook(telemetry.capture.on_span))

    def _uninstrument(self, **kwargs: Any) -> None:
        patcher = getattr(self, "_patcher", None)
        if patcher is not None:
            patcher.unwrap_all()


__all__ = ["SCOPE", "AnthropicInstrumentor"]
