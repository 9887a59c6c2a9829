"""A plain LLM app with no telemetry code at all: the end-to-end test runs it under opentelemetry-instrument.

It talks to the fake provider whose URL is in ``FAKE_PROVIDER_URL`` with the real OpenAI and Anthropic
SDKs: a non-streamed chat, a streamed chat with a scripted first-token delay and stall, an Anthropic
streamed message (the SDK's native tracing is on by default), and an output that leaks an e-mail.
"""

from __future__ import annotations

import os

import anthropic
import openai

from llm_telemetry import attribute
from llm_telemetry.fake_provider import Behaviour

url = os.environ["FAKE_PROVIDER_URL"]
oai = openai.OpenAI(api_key="sk-e2e-secret", base_url=url + "/v1", max_retries=0)
claude = anthropic.Anthropic(api_key="sk-ant-e2e-secret", base_url=url, max_retries=0)
messages = [{"role": "user", "content": "When was invoice 2291 issued?"}]

with attribute(user_id="user-7", feature="invoice-dates"):
    oai.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                extra_headers=Behaviour(text="2025-04-03", input_tokens=1000, output_tokens=200).header())
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True},
        extra_headers=Behaviour(chunks=["It ", "was ", "the ", "third ", "of ", "April."], first_token_delay_s=0.3,
                                inter_token_delay_s=0.02, stalls={3: 0.6}).header(),
    )
    print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=messages,
        extra_headers=Behaviour(text="Write to billing@example.com for a copy.", first_token_delay_s=0.1).header(),
    ) as message_stream:
        print(message_stream.get_final_text())
print("llm_app: done")
