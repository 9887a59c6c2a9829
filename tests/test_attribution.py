"""Attribution: one shared `attribute` instance under concurrency, and inbound baggage as untrusted input."""

from __future__ import annotations

import asyncio
import logging
import random
import threading

import pytest
from _openai_helpers import MESSAGES
from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

import llm_telemetry
from llm_telemetry import attributes as a
from llm_telemetry.attribution import DROP_BAGGAGE_REJECTED, baggage_rejections, current_attribution
from llm_telemetry.config import ConfigError, load_settings

pytestmark = pytest.mark.usefixtures("instrumented")

SHARED = llm_telemetry.attribute(feature="shared-feature")
"""Module level, as apps write it: one instance entered by every task and thread below."""

N_TASKS = 200
N_THREADS = 8
CALLS_PER_THREAD = 10


@SHARED
async def decorated_async(aclient, user: str) -> None:
    with llm_telemetry.attribute(user_id=user):
        await asyncio.sleep(0)
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


@SHARED
def decorated_sync(client, user: str) -> None:
    with llm_telemetry.attribute(user_id=user):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


async def test_one_shared_instance_in_200_tasks_and_threads_keeps_each_entry_apart(otel, client, aclient, caplog):
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    leaks: list[str] = []
    rng = random.Random(7)
    delays = [rng.random() / 100 for _ in range(N_TASKS)]

    async def task(i: int) -> None:
        if i % 4 == 0:
            await decorated_async(aclient, f"task-{i}")
        else:
            with SHARED:
                await asyncio.sleep(delays[i])  # other tasks enter and leave SHARED meanwhile
                with llm_telemetry.attribute(user_id=f"task-{i}"):
                    await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                await asyncio.sleep(delays[-i])
        if current_attribution():
            leaks.append(f"task {i}: {current_attribution()}")

    def worker(t: int) -> None:
        for j in range(CALLS_PER_THREAD):
            if j % 2:
                decorated_sync(client, f"thread-{t}-{j}")
            else:
                with SHARED, llm_telemetry.attribute(user_id=f"thread-{t}-{j}"):
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            if current_attribution():
                leaks.append(f"thread {t}/{j}: {current_attribution()}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(task(i) for i in range(N_TASKS)))
    for thread in threads:
        thread.join(60)

    assert not [r.getMessage() for r in caplog.records if "detach" in r.getMessage().lower()]
    assert leaks == []
    assert current_attribution() == {}
    spans = otel.spans()
    expected_users = {f"task-{i}" for i in range(N_TASKS)} | {f"thread-{t}-{j}" for t in range(N_THREADS) for j in range(CALLS_PER_THREAD)}
    assert len(spans) == len(expected_users)
    assert sorted(s.attributes[a.USER_ID] for s in spans) == sorted(expected_users)  # each call carries its own user
    assert {s.attributes[a.FEATURE] for s in spans} == {"shared-feature"}


def test_reentering_one_instance_in_one_context_unwinds_in_order() -> None:
    inner = llm_telemetry.attribute(user_id="u-1")
    with inner:
        with llm_telemetry.attribute(feature="f"), inner:
            assert current_attribution() == {a.USER_ID: "u-1", a.FEATURE: "f"}
        assert current_attribution() == {a.USER_ID: "u-1"}
    assert current_attribution() == {}


# --- inbound baggage ---------------------------------------------------------------------------------------

def _inbound(header: str) -> object:
    """Attach the context a server instrumentation builds from an HTTP request carrying ``baggage: header``."""
    return context.attach(W3CBaggagePropagator().extract({"baggage": header}))


def test_inbound_baggage_does_not_attribute_by_default_and_is_counted(otel, client, caplog):
    before = baggage_rejections.count
    caplog.set_level(logging.WARNING, logger="llm_telemetry.attribution")
    token = _inbound("user.id=victim-ceo,llm_telemetry.feature=admin-export,unrelated=1")
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        context.detach(token)
    for span in otel.spans():
        assert a.USER_ID not in span.attributes
        assert a.FEATURE not in span.attributes
    assert baggage_rejections.count - before == 4  # two keys on two calls; `unrelated` is none of ours
    assert baggage_rejections.dropped_counts()[DROP_BAGGAGE_REJECTED] == baggage_rejections.count
    if before == 0:  # logged once per process, and never with the sender's value
        assert "LLM_TELEMETRY_ATTRIBUTION_TRUST_BAGGAGE" in caplog.text
    assert "victim-ceo" not in caplog.text


def test_in_process_attribution_works_inside_untrusted_baggage_and_still_propagates(otel, client):
    token = _inbound("user.id=victim-ceo,session.id=s-forged")
    try:
        with llm_telemetry.attribute(feature="search", user_id="u-real"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            carrier: dict[str, str] = {}
            W3CBaggagePropagator().inject(carrier)
    finally:
        context.detach(token)
    attrs = otel.spans()[0].attributes
    assert attrs[a.FEATURE] == "search"
    assert attrs[a.USER_ID] == "u-real"
    assert a.SESSION_ID not in attrs
    assert "llm_telemetry.feature=search" in carrier["baggage"]  # downstream services still get it
    assert "user.id=u-real" in carrier["baggage"]


def test_baggage_set_in_process_without_attribute_is_not_trusted_either() -> None:
    token = context.attach(baggage.set_baggage("user.id", "u-1"))
    try:
        assert current_attribution() == {}
    finally:
        context.detach(token)


def test_trusted_baggage_takes_only_allow_listed_short_plain_values(otel, client, settings_env):
    settings_env({
        "LLM_TELEMETRY_ATTRIBUTION_TRUST_BAGGAGE": "true",
        "LLM_TELEMETRY_ATTRIBUTION_BAGGAGE_KEYS": "user.id,session.id",
        "LLM_TELEMETRY_ATTRIBUTION_BAGGAGE_MAX_CHARS": "16",
    })
    token = _inbound("user.id=u-42@example.com,session.id=s-1,llm_telemetry.feature=admin")
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        context.detach(token)
    attrs = otel.spans()[0].attributes
    assert (attrs[a.USER_ID], attrs[a.SESSION_ID]) == ("u-42@example.com", "s-1")
    assert a.FEATURE not in attrs  # not allow-listed

    cases = {
        "user.id=" + "x" * 17: {},  # too long
        "user.id=%3Cscript%3E": {},  # decoded to <script>: characters outside the allowed set
        "user.id=a%20b": {},  # a space
        "user.id=" + "x" * 16: {a.USER_ID: "x" * 16},
    }
    for header, expected in cases.items():
        before = baggage_rejections.count
        token = _inbound(header)
        try:
            assert current_attribution() == expected, header
        finally:
            context.detach(token)
        assert baggage_rejections.count - before == (0 if expected else 1), header


def test_attribution_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"LLM_TELEMETRY_ATTRIBUTION_BAGGAGE_KEYS.*'user\.name' is not an attribution baggage key"):
        load_settings({"LLM_TELEMETRY_ATTRIBUTION_BAGGAGE_KEYS": "user.id,user.name"})
    with pytest.raises(ConfigError, match="LLM_TELEMETRY_ATTRIBUTION_TRUST_BAGGAGE"):
        load_settings({"LLM_TELEMETRY_ATTRIBUTION_TRUST_BAGGAGE": "maybe"})
    assert load_settings({}).attribution.trust_baggage is False
