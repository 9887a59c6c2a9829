"""The fake provider's controls: Behaviour validation, queue/header selection, pacing and lifecycle.

Timing assertions only check the delays the tests inject (with generous upper tolerances).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import anthropic
import openai
import pytest
from _fake_provider_helpers import MESSAGES, openai_client

from llm_telemetry.fake_provider import BEHAVIOUR_HEADER, Behaviour, FakeProvider

# --- Behaviour ----------------------------------------------------------------------------------


def test_behaviour_json_round_trip_and_string_stall_keys() -> None:
    b = Behaviour.from_json({"text": "a b", "stalls": {"2": 0.5}, "error_status": 429, "chunks": ["x", "y"]})
    assert b.stalls == {2: 0.5}
    assert Behaviour.from_json(json.loads(b.to_json())) == b
    assert Behaviour(stalls={"1": 2}).stalls == {1: 2.0}  # type: ignore[dict-item]
    assert Behaviour(text="Hi there  you").content_chunks() == ["Hi", " there", "  you"]
    assert Behaviour(chunks=["a", "b"]).completion_tokens() == 2


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"first_token_dely_s": 1}, "'first_token_dely_s'"),
        ({"first_token_delay_s": "1"}, "'first_token_delay_s'"),
        ({"error_status": 200}, "'error_status'"),
        ({"stalls": {"x": 1}}, "'x'"),
        ({"include_usage": 1}, "'include_usage'"),
    ],
)
def test_behaviour_rejects_bad_keys_and_values_naming_them(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Behaviour.from_json(data)


# --- behaviour selection ----------------------------------------------------------------------------


def test_queue_is_fifo_across_endpoints_then_default_then_reset(fp: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fp.set_default(Behaviour(text="default"))
    fp.enqueue(Behaviour(text="first"), Behaviour(text="second"))
    assert oai.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "first"
    assert claude.messages.create(model="c", max_tokens=5, messages=MESSAGES).content[0].text == "second"  # type: ignore[union-attr]
    assert oai.responses.create(model="m", input="x").output_text == "default"
    assert len(fp.requests) == 3
    fp.reset()
    assert fp.requests == []
    assert oai.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == Behaviour().text


def test_header_override_wins_and_leaves_queue(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(text="queued"))
    r = oai.chat.completions.create(model="m", messages=MESSAGES, extra_headers=Behaviour(text="from header").header())
    assert r.choices[0].message.content == "from header"
    assert oai.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "queued"
    with pytest.raises(openai.BadRequestError, match="'txt'"):
        oai.chat.completions.create(model="m", messages=MESSAGES, extra_headers={BEHAVIOUR_HEADER: '{"txt": "x"}'})


def test_unknown_route_is_provider_shaped_404(fp: FakeProvider, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="m", prompt="x")
    assert fp.last_request.path == "/v1/completions"


# --- pacing -----------------------------------------------------------------------------------------


def test_stream_first_token_delay_and_stall_are_observable(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(chunks=["a", "b", "c"], first_token_delay_s=0.3, inter_token_delay_s=0.02, stalls={"2": 0.25}))
    start = time.monotonic()
    stream = oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    arrivals: list[float] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 3
    assert 0.3 <= arrivals[0] < 1.3
    assert arrivals[1] - arrivals[0] >= 0.015
    assert arrivals[2] - arrivals[1] >= 0.25


def test_stream_headers_go_out_before_first_token(fp: FakeProvider, claude: anthropic.Anthropic) -> None:
    fp.enqueue(Behaviour(first_token_delay_s=0.4))
    start = time.monotonic()
    stream = claude.messages.create(model="c", max_tokens=5, messages=MESSAGES, stream=True)
    first_event = next(iter(stream))
    head_at = time.monotonic() - start
    assert first_event.type == "message_start"
    assert head_at < 0.4
    assert any(e.type == "content_block_delta" for e in stream)
    assert time.monotonic() - start >= 0.4


def test_json_answer_waits_for_generation_time(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(chunks=["a", "b"], first_token_delay_s=0.2, inter_token_delay_s=0.1))
    start = time.monotonic()
    oai.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start >= 0.3


def test_headers_delay_triggers_client_timeout(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(headers_delay_s=3.0))
    with pytest.raises(openai.APITimeoutError):
        oai.chat.completions.create(model="m", messages=MESSAGES, stream=True, timeout=0.2)


# --- lifecycle ----------------------------------------------------------------------------------------


def _handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name or t.name == "fake-provider"]


def test_stop_is_clean_even_with_idle_and_sleeping_connections() -> None:
    before = set(_handler_threads())
    provider = FakeProvider().start()
    client = openai_client(provider)
    client.chat.completions.create(model="m", messages=MESSAGES)  # leaves a keep-alive connection open
    provider.enqueue(Behaviour(first_token_delay_s=30))
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # handler now sleeping
    start = time.monotonic()
    provider.stop()
    assert time.monotonic() - start < 5
    assert set(_handler_threads()) - before == set()
    stream.close()
    client.close()


def test_module_main_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "llm_telemetry.fake_provider", "--behaviour", '{"text": "from cli"}']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        url = line.split(" ", 1)[1]
        with urllib.request.urlopen(url + "/health", timeout=5) as health:
            assert json.load(health) == {"status": "ok"}
        with openai.OpenAI(api_key="test-key", base_url=url + "/v1", max_retries=0) as client:
            assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "from cli"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
