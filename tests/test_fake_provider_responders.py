"""The fake provider's computed answers: dates from the prompt, right or day/month transposed."""

from __future__ import annotations

from typing import Any

import pytest

from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.fake_provider.responders import NO_DATE, respond


def test_iso_dates_and_their_transposition_from_each_wire_format() -> None:
    chat = {"messages": [{"role": "system", "content": "01/02/2000"}, {"role": "user", "content": "Issued 03/04/2025, due 25/04/2025"}]}
    assert respond("iso_dates", chat) == "2025-04-03, 2025-04-25"
    assert respond("iso_dates_transposed", chat) == "2025-03-04, 2025-04-25"  # 25/04 has only one reading
    anthropic = {"messages": [{"role": "user", "content": [{"type": "text", "text": "on 07/11/2024"}]}]}
    assert respond("iso_dates_transposed", anthropic) == "2024-07-11"
    assert respond("iso_dates", {"input": "on 07/11/2024"}) == "2024-11-07"
    assert respond("iso_dates", {"input": [{"role": "user", "content": "nothing here"}]}) == NO_DATE


def test_responder_names_are_validated() -> None:
    assert Behaviour.from_json({"responder": "iso_dates"}).responder == "iso_dates"
    with pytest.raises(ValueError, match="unknown responder 'dates'"):
        Behaviour.from_json({"responder": "dates"})


def test_served_through_the_real_sdk(fp: Any, oai: Any) -> None:
    fp.set_default(Behaviour(responder="iso_dates_transposed"))
    reply = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "Invoice of 03/04/2025"}])
    assert reply.choices[0].message.content == "2025-03-04"
    assert fp.last_request.behaviour.responder == "iso_dates_transposed"
