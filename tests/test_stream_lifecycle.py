"""When a stream's span ends: at the stream helpers' exit (not at GC), never inside a GC finalizer, and at process exit.

* OpenAI's ``chat.completions.stream()`` / ``responses.stream()`` close the HTTP response themselves on
  exit, past our proxy: the span must still end right there, with the application's reason.
* A stream dropped unread is ended from a queue drained by a thread, never inside ``__del__``: a
  collection triggered while one of our locks is held must not deadlock.
* A stream partly read and still referenced when the process exits is ended (and exported) at exit.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _export_helpers import clean_env
from _openai_helpers import MESSAGES
from _otlp_receiver import OtlpGrpcReceiver
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from llm_telemetry import attributes as a
from llm_telemetry.config import load_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation import flush_abandoned
from llm_telemetry.processors.budget import BudgetEnricher
from llm_telemetry.processors.chain import EnricherChain
from llm_telemetry.processors.cost import CostEnricher
from llm_telemetry.side_channel import side_channel

pytestmark = pytest.mark.usefixtures("both_instrumented")

CHUNKS = ["It ", "is ", "3 ", "April."]


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The collector must not end a span behind the test's back: only the code under test may."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def only_span(otel):
    spans = otel.spans()
    assert len(spans) == 1, [(s.name, s.attributes.get(a.STREAM_END_REASON)) for s in spans]
    return spans[0]


# --- 5: the OpenAI stream helpers left early ---------------------------------------------------------


@pytest.mark.usefixtures("no_gc")
def test_chat_stream_helper_left_early_ends_its_span_at_exit(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta" and event.delta:
                break
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1
    assert span.status.status_code is trace.StatusCode.UNSET


@pytest.mark.usefixtures("no_gc")
def test_responses_stream_helper_left_by_an_app_exception(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    with pytest.raises(ValueError), client.responses.stream(model="gpt-4o-mini", input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                raise ValueError("the app's own bug")
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "app_exception"
    assert span.status.status_code is trace.StatusCode.UNSET


@pytest.mark.usefixtures("no_gc")
async def test_async_chat_stream_helper_left_early(otel, aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    async with aclient.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        async for event in stream:
            if event.type == "content.delta":
                break
    assert only_span(otel).attributes[a.STREAM_END_REASON] == "closed_early"


@pytest.mark.usefixtures("no_gc")
async def test_async_responses_stream_helper_read_to_the_end(otel, aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    async with aclient.responses.stream(model="gpt-4o-mini", input="hi") as stream:
        final = await stream.get_final_response()
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "completed"
    assert span.attributes[a.RESPONSE_ID] == final.id


# --- 6: no locking work inside a GC finalizer ---------------------------------------------------------


def _abandon_in_a_cycle(client) -> None:
    """Start a stream, read one chunk, drop it inside a reference cycle: only the collector can free it."""
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    cycle: list[object] = [stream]
    cycle.append(cycle)


def test_collection_while_our_lock_is_held_does_not_deadlock(otel, client, fake_provider):
    # The repro: a collection forced inside the budget update. The budget enricher measures every
    # finished call under its lock; a finalizer that ended the span inline would wait on that same lock.
    budget = BudgetEnricher(load_settings({"LLM_TELEMETRY_BUDGET_DAILY_USD": "10"}).budget)
    side_channel.connect(EnricherChain([CostEnricher(), budget]))
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    _abandon_in_a_cycle(client)
    finished = threading.Event()

    def collect_while_holding_the_lock() -> None:
        with budget._lock:
            gc.collect()
        finished.set()

    worker = threading.Thread(target=collect_while_holding_the_lock, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert finished.is_set(), "a GC finalizer took a lock its own thread held: deadlock"
    flush_abandoned(timeout=5)
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"
    assert span.attributes[a.STREAM_CHUNK_COUNT] >= 0


def test_abandoned_streams_are_ended_off_the_collecting_thread(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    ending_threads: list[str] = []
    tracer_provider = otel.tracer_provider

    class Spy(SpanProcessor):
        def on_end(self, span):
            ending_threads.append(threading.current_thread().name)

    tracer_provider.add_span_processor(Spy())
    _abandon_in_a_cycle(client)
    gc.collect()
    flush_abandoned(timeout=5)
    assert only_span(otel).attributes[a.STREAM_END_REASON] == "abandoned"
    assert ending_threads and threading.current_thread().name not in ending_threads


def test_a_forked_child_never_ends_its_parents_streams(otel, client, fake_provider):
    """The child has a copy of the parent's open streams: ending them there would export duplicate spans."""
    import os

    from llm_telemetry.instrumentation import _lifecycle

    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    _parent_streams = list(_lifecycle._open.values())
    pid = os.fork()
    if pid == 0:  # the child: its exit hook and its collector must leave the parent's stream alone
        status = 1
        try:
            _lifecycle.end_open_streams()
            _lifecycle.abandon(*next(iter(_parent_streams)))  # as if the child's collector freed the copy
            flush_abandoned(timeout=2)
            status = 0 if otel.spans() == [] else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    stream.close()
    assert only_span(otel).attributes[a.STREAM_END_REASON] == "closed_early"


# --- 17: a stream still open at process exit -----------------------------------------------------------

EXIT_APP = textwrap.dedent(
    """
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from llm_telemetry.fake_provider import Behaviour, FakeProvider
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    provider = TracerProvider()  # registers its own shutdown at exit, before our instrumentor exists
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT, insecure=True)))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    fake = FakeProvider().start()
    client = openai.OpenAI(api_key="k", base_url=fake.openai_base_url, max_retries=0)
    KEPT = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_headers=Behaviour(chunks=["a ", "b ", "c "], inter_token_delay_s=30).header(),
    )
    first = next(chunk for chunk in KEPT if chunk.choices and chunk.choices[0].delta.content)
    print("read", first.choices[0].delta.content.strip(), flush=True)
    """
)


def test_stream_still_open_at_process_exit_is_exported(tmp_path: Path):
    with OtlpGrpcReceiver() as rx:
        script = tmp_path / "exit_app.py"
        script.write_text(f"ENDPOINT = {rx.endpoint!r}\n" + EXIT_APP)
        env = clean_env()
        run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "read a" in run.stdout
        (span,) = rx.wait_for_spans(1, timeout=10)
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes[a.STREAM_END_REASON] == "process_exit"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1
