"""Who a GenAI call is for: user, session, conversation and feature, put on every GenAI span.

    with llm_telemetry.attribute(user_id="u-42", feature="invoice-extraction"):
        client.chat.completions.create(...)

    @llm_telemetry.attribute(feature="summarise")
    def summarise(doc): ...

Two carriers, two levels of trust:

- **In-process** values (set with `attribute`) live under our own OpenTelemetry context key. They follow
  the call through threads and asyncio tasks the way OTel context does, and they are always used.
- **Baggage**: `attribute` also writes the values as W3C baggage (``user.id``, ``session.id``,
  ``gen_ai.conversation.id``, ``llm_telemetry.feature``) so they propagate to downstream services. But
  inbound baggage is set by whoever sent the request — under the default propagators any HTTP client can
  send ``baggage: user.id=victim-ceo`` and, if it were trusted, put that user on spans, metric series
  and budgets. So baggage that `attribute` did not set in this process is ignored unless the operator
  opts in (``attribution.trust_baggage``), and then only allow-listed keys with short, plain values
  are taken. Every value ignored is counted (`baggage_rejections`, reason
  ``attribution_baggage_rejected`` of ``llm_telemetry.dropped``) and the first one is logged.

Context tokens of a `with attribute(...)` block are kept per context (a `ContextVar` per instance),
never on the instance itself: one module-level instance may be entered by many threads and asyncio
tasks at once, and each must detach exactly the context it attached.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry import baggage, context

from llm_telemetry import attributes as a
from llm_telemetry import config as _config

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DROP_BAGGAGE_REJECTED = "attribution_baggage_rejected"
"""``llm_telemetry.dropped.reason`` of attribution values taken from inbound baggage and ignored."""

_BAGGAGE_TO_ATTRIBUTE: dict[str, str] = {
    a.BAGGAGE_USER_ID: a.USER_ID,
    a.BAGGAGE_SESSION_ID: a.SESSION_ID,
    a.BAGGAGE_CONVERSATION_ID: a.CONVERSATION_ID,
    a.BAGGAGE_FEATURE: a.FEATURE,
}
_OWN_KEY = context.create_key("llm_telemetry.attribution")
"""Context key of the values `attribute` set in this process: attribute name → value."""
_VALUE_CHARS = re.compile(r"[A-Za-z0-9._:@/+=\-]+")


class attribute:  # noqa: N801 - used like a function: `with attribute(...)` / `@attribute(...)`
    """Attach user / session / conversation / feature to every GenAI span created inside.

    Works as a context manager and as a decorator (sync and async functions); one instance may be shared
    by concurrent threads and tasks. ``None`` leaves the value inherited from the enclosing scope unchanged.
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
        # The tokens of the entries still open *in the current context*: a stack, for nested re-entry.
        self._entries: ContextVar[tuple[object, ...]] = ContextVar(f"llm_telemetry.attribute@{id(self):x}", default=())

    def __enter__(self) -> attribute:
        token = _attach(self._values)
        self._entries.set((*self._entries.get(), token))
        return self

    def __exit__(self, *exc: object) -> None:
        entries = self._entries.get()
        if not entries:  # exited in another context than it was entered in: nothing of ours to detach here
            logger.debug("llm_telemetry.attribute exited in a context where it was not entered; nothing detached")
            return
        self._entries.set(entries[:-1])
        context.detach(entries[-1])  # type: ignore[arg-type]

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


def _attach(values: Mapping[str, str]) -> object:
    """Attach a context carrying ``values`` (baggage key → value) as baggage and as our own trusted entry."""
    ctx = context.get_current()
    own = dict(context.get_value(_OWN_KEY, ctx) or {})  # type: ignore[call-overload]
    for key, value in values.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
        own[_BAGGAGE_TO_ATTRIBUTE[key]] = value
    return context.attach(context.set_value(_OWN_KEY, own, ctx))


@contextmanager
def _scope(values: dict[str, str]) -> Iterator[None]:
    # A fresh token per invocation: the decorated function may run concurrently or recursively.
    token = _attach(values)
    try:
        yield
    finally:
        context.detach(token)  # type: ignore[arg-type]


def current_attribution(ctx: context.Context | None = None) -> dict[str, str]:
    """The attribution attributes (semconv / llm_telemetry names) in effect in ``ctx`` (default: current).

    Values set with `attribute` in this process always count; values only present in baggage count
    when ``attribution.trust_baggage`` is on and they pass its limits (else they are counted as rejected).
    """
    own = context.get_value(_OWN_KEY, ctx)
    out: dict[str, str] = dict(own) if own else {}  # type: ignore[call-overload]
    entries = baggage.get_all(ctx)
    if not entries or len(out) == len(_BAGGAGE_TO_ATTRIBUTE):
        return out
    policy = None
    for key, name in _BAGGAGE_TO_ATTRIBUTE.items():
        if name in out:
            continue
        value = entries.get(key)
        if value is None:
            continue
        if policy is None:
            policy = _policy()
        problem = policy.problem(key, value)
        if problem is None:
            out[name] = value  # type: ignore[assignment]
        else:
            baggage_rejections.reject(key, problem)
    return out


# --- inbound baggage: policy and rejections ----------------------------------------------------------------

class BaggagePolicy:
    """Which inbound baggage values may attribute a call (from the ``attribution`` settings)."""

    __slots__ = ("keys", "max_chars", "trust")

    def __init__(self, settings: _config.AttributionSettings) -> None:
        self.trust = settings.trust_baggage
        self.keys = frozenset(settings.baggage_keys)
        self.max_chars = settings.baggage_max_chars

    def problem(self, key: str, value: object) -> str | None:
        """Why ``value`` of baggage ``key`` is not accepted, or None when it is."""
        if not self.trust:
            return f"inbound baggage is not trusted ({_config.env_var('attribution', 'trust_baggage')} is off)"
        if key not in self.keys:
            return f"key not allowed ({_config.env_var('attribution', 'baggage_keys')})"
        if not isinstance(value, str) or not value:
            return "not a non-empty string"
        if len(value) > self.max_chars:
            return f"longer than {self.max_chars} chars ({_config.env_var('attribution', 'baggage_max_chars')})"
        if _VALUE_CHARS.fullmatch(value) is None:
            return "characters other than letters, digits and ._:@/+=-"
        return None


_DEFAULT_POLICY = BaggagePolicy(_config.AttributionSettings())
_policy_cache: tuple[object, BaggagePolicy] | None = None
_settings_failed = False


def _policy() -> BaggagePolicy:
    """The policy of the process-wide settings; never parses the environment more than once on this path."""
    global _policy_cache, _settings_failed
    settings = _config._settings
    if settings is None:
        if _settings_failed:
            return _DEFAULT_POLICY
        try:
            settings = _config.get_settings()
        except Exception:  # a bad setting is reported where it is loaded; here: the safe default
            _settings_failed = True
            return _DEFAULT_POLICY
    cached = _policy_cache
    if cached is not None and cached[0] is settings:
        return cached[1]
    policy = BaggagePolicy(settings.attribution)
    _policy_cache = (settings, policy)
    return policy


class BaggageRejections:
    """Counts attribution values ignored in inbound baggage (a `DropReporter`), logging the first one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def reject(self, key: str, problem: str) -> None:
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:  # the value is the sender's: never logged
            logger.warning(
                "llm-telemetry: ignored attribution from inbound baggage key %r: %s. In-process attribution "
                "(llm_telemetry.attribute) is unaffected; further rejections are counted in llm_telemetry.dropped{reason=%s}",
                key, problem, DROP_BAGGAGE_REJECTED,
            )

    def dropped_counts(self) -> dict[str, int]:
        return {DROP_BAGGAGE_REJECTED: self.count} if self.count else {}


baggage_rejections = BaggageRejections()
"""Process-wide: add ``baggage_rejections.dropped_counts`` as a source of the ``llm_telemetry.dropped`` counter."""
