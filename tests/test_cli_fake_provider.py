"""``llm-telemetry fake-provider --host/--port``: the bundled fake provider for one's own app, from the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anthropic
import openai

CLI = Path(sys.executable).parent / "llm-telemetry"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_both_sdks_on_the_requested_port_until_interrupted() -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(CLI), "fake-provider", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"READY http://127.0.0.1:{port}"
        usage = proc.stdout.readline()
        assert f"OpenAI base_url http://127.0.0.1:{port}/v1" in usage and f"Anthropic base_url http://127.0.0.1:{port}" in usage
        with openai.OpenAI(api_key="any", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0) as oai:
            reply = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content and reply.usage.total_tokens > 0
        with anthropic.Anthropic(api_key="any", base_url=f"http://127.0.0.1:{port}", max_retries=0) as claude:
            message = claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
            assert message.content[0].text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_cli_says_when_the_port_is_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([str(CLI), "fake-provider", "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
