"""Safety monitoring: a linear-time RE2 pattern screen on every GenAI output, a sampled LLM judge, a
durable human review queue, the blocking `guard` API and the safety report.

- `SafetyEnricher` — the pipeline enricher (entry point ``safety``).
- `guard(output, prompt=None) -> Verdict` — for apps that refuse blocked outputs.
- `safety_report()` — hard-block / flag / judge rates, review queue size, alerts.
- `JudgeVerdict` — what a custom judge (``judge.callable = "module:function"``) returns.
"""

from llm_telemetry.processors.safety.enricher import SafetyEnricher
from llm_telemetry.processors.safety.guard_api import Verdict, guard
from llm_telemetry.processors.safety.judge import JudgeVerdict
from llm_telemetry.processors.safety.report import safety_report

__all__ = ["JudgeVerdict", "SafetyEnricher", "Verdict", "guard", "safety_report"]
