"""The target ``llm-telemetry eval`` / ``canary`` run: one chat call per case through the instrumented SDK.

The case becomes a conversation: the case's (or dataset's) ``system`` is the system prompt; a prompt
``input`` is the user message, with the case's ``context`` before it under ``Context:``; a ``messages``
input is sent as given, the context appended to the system prompt. OpenAI Chat Completions or
Anthropic Messages is chosen by ``provider`` (``auto``: models named ``claude…`` go to Anthropic).

Keys: ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` from the environment, only handed to the SDK. With a
``base_url`` (a local OpenAI-compatible server, the fake provider) a missing key is replaced by a
placeholder, since such servers rarely check it and the SDKs insist on one.
"""

from __future__ import annotations

import inspect
import os
import threading
from dataclasses import dataclass
from typing import Any

from llm_telemetry.processors.quality.datasets import Case

PROVIDERS = ("auto", "openai", "anthropic")


def resolve_provider(provider: str, model: str) -> str:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    if provider != "auto":
        return provider
    return "anthropic" if model.lower().startswith("claude") else "openai"


@dataclass
class LLMTarget:
    model: str
    provider: str = "auto"
    base_url: str | None = None
    temperature: float | None = 0.0
    max_tokens: int = 1024
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        self.provider = resolve_provider(self.provider, self.model)
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"{self.provider} {self.model}" + (f" at {self.base_url}" if self.base_url else "")

    def run_case(self, case: Case) -> dict[str, Any]:
        system, messages = conversation(case)
        client = self._get_client()
        if self.provider == "anthropic":
            kwargs: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": messages}
            if system:
                kwargs["system"] = system
            if self.temperature is not None and _accepts(client.messages.create, "temperature"):
                kwargs["temperature"] = self.temperature
            message = client.messages.create(**kwargs)
            text = "".join(getattr(block, "text", "") for block in message.content if getattr(block, "type", "") == "text")
            return {"output": text, "response_id": message.id}
        chat = ([{"role": "system", "content": system}] if system else []) + messages
        kwargs = {"model": self.model, "messages": chat, "max_tokens": self.max_tokens}
        if self.temperature is not None and _accepts(client.chat.completions.create, "temperature"):
            kwargs["temperature"] = self.temperature
        response = client.chat.completions.create(**kwargs)
        text = response.choices[0].message.content if response.choices else None
        return {"output": text or "", "response_id": response.id}

    def __call__(self, value: Any) -> dict[str, Any]:
        """Plain ``target(input)`` use: the input alone, no system prompt or context."""
        return self.run_case(Case("-", value))

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                if self.provider == "anthropic":
                    import anthropic

                    key = os.environ.get("ANTHROPIC_API_KEY") or ("unused" if self.base_url else None)
                    self._client = anthropic.Anthropic(api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=2)
                else:
                    import openai

                    key = os.environ.get("OPENAI_API_KEY") or ("unused" if self.base_url else None)
                    self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=2)
            return self._client


def _accepts(method: Any, name: str) -> bool:
    """Whether an SDK method takes ``name``: newer SDKs dropped ``temperature`` for some APIs (anthropic 2.x)."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def conversation(case: Case) -> tuple[str | None, list[dict[str, str]]]:
    """(system prompt, user/assistant messages) for one case."""
    context = case.context_text
    system_parts = [case.system] if case.system else []
    if isinstance(case.input, str):
        user = f"Context:\n{context}\n\n{case.input}" if context else case.input
        messages = [{"role": "user", "content": user}]
    else:
        messages = []
        for message in case.input:
            if message["role"] == "system":
                system_parts.append(message["content"])
            else:
                messages.append({"role": message["role"], "content": message["content"]})
        if context:
            system_parts.append(f"Context:\n{context}")
    return ("\n\n".join(system_parts) or None), messages
