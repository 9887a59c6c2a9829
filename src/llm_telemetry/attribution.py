"""Who a GenAI call is for: user, session, conversation and feature, put on every GenAI span.

The values live in OpenTelemetry baggage, so they (1) follow the call through threads and asyncio tasks
the way OTel context does, and (2) propagate to downstream services when the app uses a propagator
that carries baggage. An upstream service that already set the same baggage keys is honoured too.

    with llm_telemetry.attribute(user_id="u-42", feature="invoice-extraction"):
        client.chat.completions.create(...)

    @llm_telemetry.attribute(feature="summarise")
    def summarise(doc): ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import baggage, context

from llm_telemetry import attributes as a

F = TypeVar("F", bound=Callable[..., Any])

_BAGGAGE_TO_ATTRIBUTE: dict[str, str] = {
    a.BAGGAGE_USER_ID: a.USER_ID,
    a.BAGGAGE_SESSION_ID: a.SESSION_ID,
    a.BAGGAGE_CONVERSATION_ID: a.CONVERSATION_ID,
    a.BAGGAGE_FEATURE: a.FEATURE,
}


class attribute:  # noqa: N801 - used like a function: `with attribute(...)` / `@attribute(...)`
    """Attach user / session / conversation / feature to every GenAI span created inside.

    Works as a context manager and as a decorator (sync and async functions). ``None`` leaves the
    value inherited from the enclosing scope unchanged.
    """

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        conversation_id: str | None = None,
        feature: str | None = None,
    ) -> None:
        values = {
            a.BAGGAGE_USER_ID: user_id,
            a.BAGGAGE_SESSION_ID: session_id,
            a.BAGGAGE_CONVERSATION_ID: conversation_id,
            a.BAGGAGE_FEATURE: feature,
        }
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise TypeError(f"llm_telemetry.attribute({key}=...) must be a str, got {type(value).__name__}: {value!r}")
        self._values = {k: v for k, v in values.items() if v is not None}
        self._tokens: list[object] = []

    def __enter__(self) -> attribute:
        ctx = context.get_current()
        for key, value in self._values.items():
            ctx = baggage.set_baggage(key, value, context=ctx)
        self._tokens.append(context.attach(ctx))
        return self

    def __exit__(self, *exc: object) -> None:
        context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _scope(self._values):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _scope(self._values):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


@contextmanager
def _scope(values: dict[str, str]) -> Iterator[None]:
    # A fresh token per invocation: the decorated function may run concurrently or recursively.
    ctx = context.get_current()
    for key, value in values.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def current_attribution(ctx: context.Context | None = None) -> dict[str, str]:
    """The attribution attributes (semconv / llm_telemetry names) in effect in ``ctx`` (default: current)."""
    entries = baggage.get_all(ctx)
    if not entries:
        return {}
    out: dict[str, str] = {}
    for key, name in _BAGGAGE_TO_ATTRIBUTE.items():
        value = entries.get(key)
        if isinstance(value, str) and value:
            out[name] = value
    return out
