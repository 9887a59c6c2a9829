"""Instrumenting never imports an SDK the app does not use; wrappers go in at the SDK's first import."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, wrapt
from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

OpenAIInstrumentor().instrument()
AnthropicInstrumentor().instrument()
assert "openai" not in sys.modules and "anthropic" not in sys.modules, "instrument() imported an SDK"

import openai
from openai.resources.chat.completions.completions import Completions
assert isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper), "not wrapped at import"
OpenAIInstrumentor().uninstrument()
assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper), "not unwrapped"

AnthropicInstrumentor().uninstrument()          # before anthropic is ever imported: its hook is disarmed
import anthropic
from anthropic.resources.messages.messages import Messages
assert not isinstance(Messages.__dict__["create"], wrapt.FunctionWrapper), "disarmed hook still wrapped"
print("ok")
"""


def test_sdks_are_wrapped_lazily_and_hooks_disarm_on_uninstrument() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
