"""Wrapping SDK methods lazily: only when (and if) the application imports the SDK.

`opentelemetry-instrument` instruments every installed library at start-up. Importing the OpenAI or
Anthropic SDK just to wrap it costs seconds of start-up in apps that never use it, so the wrappers are
installed by a ``wrapt`` post-import hook instead: immediately if the SDK is already imported, else at
its first import. ``unwrap_all`` restores everything and disarms hooks that have not fired yet (wrapt
hooks cannot be unregistered, so each carries the generation it belongs to).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

logger = logging.getLogger(__name__)


class Patcher:
    """Records what it wrapped so it can be unwrapped; runs patch functions at SDK import time."""

    def __init__(self, sdk: str) -> None:
        self._sdk = sdk
        self._generation = 0
        self._wrapped: list[tuple[Any, str]] = []

    def on_import(self, module_name: str, patch: Callable[[ModuleType], None]) -> None:
        generation = self._generation

        def hook(module: ModuleType) -> None:
            if generation != self._generation:  # instrumentation was removed before the SDK was imported
                return
            try:
                patch(module)
            except Exception:
                logger.warning("llm-telemetry: could not instrument %s (%s)", self._sdk, module_name, exc_info=True)

        wrapt.register_post_import_hook(hook, module_name)

    def wrap(self, module: ModuleType, owner: Any, path: str, wrapper: Callable[..., Any]) -> None:
        """Wrap ``module.<path>`` (``Class.method`` or a function); ``owner`` holds the attribute to restore."""
        try:
            wrapt.wrap_function_wrapper(module, path, wrapper)
            self._wrapped.append((owner, path.rsplit(".", 1)[-1]))
        except Exception:
            logger.warning("llm-telemetry: could not instrument %s %s", self._sdk, path, exc_info=True)

    def unwrap_all(self) -> None:
        self._generation += 1
        for owner, name in self._wrapped:
            unwrap(owner, name)
        self._wrapped = []
