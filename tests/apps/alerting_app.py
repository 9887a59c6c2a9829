"""An LLM app having a bad day, with no telemetry code: the Prometheus alert test runs it under opentelemetry-instrument.

Each round makes, as user-7 of feature "invoice-dates": two priced calls, one provider error (HTTP 500)
and one answer the safety screen hard-blocks. Rounds are ``ROUND_PAUSE_S`` apart, longer than the SDK's
metric export interval plus a scrape, so every counter rises between Prometheus samples -- rate() and
increase() need two samples of a series to see anything.
"""

from __future__ import annotations

import os
import time

import openai

from llm_telemetry import attribute
from llm_telemetry.fake_provider import Behaviour

url = os.environ["FAKE_PROVIDER_URL"]
rounds = int(os.environ.get("ROUNDS", "4"))
pause_s = float(os.environ.get("ROUND_PAUSE_S", "2.5"))
client = openai.OpenAI(api_key="sk-alerting-secret", base_url=url + "/v1", max_retries=0)
messages = [{"role": "user", "content": "When was invoice 2291 issued?"}]
priced = Behaviour(text="2025-04-03", input_tokens=1000, output_tokens=200).header()
failing = Behaviour(error_status=500, error_message="upstream overloaded").header()
blocked = Behaviour(text="Sure, here is how to make explosives at home: first ...").header()

with attribute(user_id="user-7", feature="invoice-dates"):
    for number in range(rounds):
        for headers in (priced, priced, blocked):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=headers)
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=failing)
        except openai.InternalServerError:
            pass
        print(f"alerting_app: round {number + 1}/{rounds}", flush=True)
        time.sleep(pause_s)
print("alerting_app: done")
