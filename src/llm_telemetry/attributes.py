"""Every attribute, event and metric name llm-telemetry reads or writes, in one place.

Names the OpenTelemetry GenAI semantic conventions define are used as they are; the rest live under the
``llm_telemetry.`` prefix. Names are typed as ``Literal`` so a misspelled name is a type error rather
than an attribute nobody queries. When the conventions rename something (for example the
``gen_ai.client.operation.*`` metrics becoming ``gen_ai.client.inference.*``), this is the only module
that changes.
"""

from __future__ import annotations

from typing import Final, Literal

PREFIX: Final = "llm_telemetry."

# --- GenAI semantic conventions (latest experimental) -------------------------------------------------
SemconvAttribute = Literal[
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.request.max_tokens",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.top_k",
    "gen_ai.request.stop_sequences",
    "gen_ai.request.seed",
    "gen_ai.request.frequency_penalty",
    "gen_ai.request.presence_penalty",
    "gen_ai.request.choice.count",
    "gen_ai.request.stream",
    "gen_ai.request.encoding_formats",
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.conversation.id",
    "gen_ai.output.type",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.embeddings.dimension.count",
    "gen_ai.token.type",
    "gen_ai.evaluation.name",
    "gen_ai.evaluation.score.label",
    "gen_ai.evaluation.score.value",
    "gen_ai.evaluation.explanation",
    "openai.response.system_fingerprint",
    "server.address",
    "server.port",
    "error.type",
    "user.id",
    "session.id",
]

OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_TOP_K: Final = "gen_ai.request.top_k"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
REQUEST_STREAM: Final = "gen_ai.request.stream"
REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
"""All input tokens, cached ones included (the conventions' definition; Anthropic reports them apart)."""
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
TOKEN_TYPE: Final = "gen_ai.token.type"
EVALUATION_NAME: Final = "gen_ai.evaluation.name"
EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"
"""OpenAI's backend-configuration fingerprint (semconv name since the ``gen_ai.openai.*`` rename)."""
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

CONTENT_ATTRIBUTES: Final = frozenset(
    {
        "input.value",  # OpenInference (Phoenix)
        "output.value",
        INPUT_MESSAGES,
        OUTPUT_MESSAGES,
        SYSTEM_INSTRUCTIONS,
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "anthropic.tool_result.content",
        # legacy content names some other instrumentations still emit
        "gen_ai.prompt",
        "gen_ai.completion",
    }
)
"""Attributes that carry prompt or output text: never exported unless content capture is on."""

# Legacy / peer names that readers accept (never written by us).
LEGACY_PROVIDER: Final = "gen_ai.system"
LEGACY_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
LEGACY_CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
LEGACY_CACHE_CREATION_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
LEGACY_OPENAI_SYSTEM_FINGERPRINT: Final = "gen_ai.openai.response.system_fingerprint"
"""Deprecated for ``openai.response.system_fingerprint``; other instrumentations still emit it."""
ANTHROPIC_CACHE_WRITE_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
"""What the Anthropic SDK's native tracing calls cache-creation tokens."""

# --- OpenInference (Arize Phoenix) ---------------------------------------------------------------------
OpenInferenceAttribute = Literal[
    "openinference.span.kind",
    "openinference.project.name",
    "llm.model_name",
    "llm.provider",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "metadata",
    "tag.tags",
    "embedding.model_name",
]
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_PROJECT_NAME: Final = "openinference.project.name"
"""A resource attribute: the Phoenix project spans are filed under."""
OI_MODEL_NAME: Final = "llm.model_name"
OI_PROVIDER: Final = "llm.provider"
OI_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
OI_INPUT_VALUE: Final = "input.value"
OI_INPUT_MIME_TYPE: Final = "input.mime_type"
OI_OUTPUT_VALUE: Final = "output.value"
OI_OUTPUT_MIME_TYPE: Final = "output.mime_type"
OI_METADATA: Final = "metadata"
OI_TAGS: Final = "tag.tags"
OI_EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
OI_EMBEDDING_TEXT: Final = "embedding.embeddings.{index}.embedding.text"
"""The text of the ``index``-th input of an embeddings call (``.format(index=0)``); content, capture on only."""

# --- llm_telemetry.* : our own names ------------------------------------------------------------------
OwnAttribute = Literal[
    # attribution
    "llm_telemetry.feature",
    # streaming latency
    "llm_telemetry.stream.chunk_count",
    "llm_telemetry.stream.tbt.mean",
    "llm_telemetry.stream.tbt.p50",
    "llm_telemetry.stream.tbt.p95",
    "llm_telemetry.stream.tbt.p99",
    "llm_telemetry.stream.tbt.max",
    "llm_telemetry.stream.stall_count",
    "llm_telemetry.stream.output_tokens_per_second",
    "llm_telemetry.stream.end_reason",
    "llm_telemetry.call.end_reason",
    "llm_telemetry.usage.output_tokens_estimated",
    "llm_telemetry.usage.input_tokens_estimated",
    "llm_telemetry.usage.invalid",
    "llm_telemetry.usage.output_tokens_estimate",
    "llm_telemetry.usage.input_tokens_estimate",
    "llm_telemetry.content.truncated",
    # cost
    "llm_telemetry.cost.total_usd",
    "llm_telemetry.cost.input_usd",
    "llm_telemetry.cost.output_usd",
    "llm_telemetry.cost.cache_read_usd",
    "llm_telemetry.cost.cache_write_usd",
    "llm_telemetry.cost.pricing_model",
    "llm_telemetry.cost.pricing_source",
    "llm_telemetry.cost.unknown_model",
    "llm_telemetry.cost.estimated",
    # budgets
    "llm_telemetry.budget.scope",
    "llm_telemetry.budget.level",
    "llm_telemetry.budget.limit_usd",
    "llm_telemetry.budget.spent_usd",
    "llm_telemetry.budget.window_start",
    # safety
    "llm_telemetry.safety.flagged",
    "llm_telemetry.safety.action",
    "llm_telemetry.safety.categories",
    "llm_telemetry.safety.pattern_ids",
    "llm_telemetry.safety.matches",
    "llm_telemetry.safety.judge.sampled",
    "llm_telemetry.safety.judge.flagged",
    "llm_telemetry.safety.judge.category",
    "llm_telemetry.safety.category",
    "llm_telemetry.safety.error",
    "llm_telemetry.safety.deferred_chars",
    # quality: model-version watch
    "llm_telemetry.quality.model_version.dimension",
    "llm_telemetry.quality.model_version.previous",
    "llm_telemetry.quality.model_version.new",
    "llm_telemetry.quality.model_version.first_seen",
    "llm_telemetry.quality.model_version.trace_id",
    "llm_telemetry.quality.model_version.baseline_calls",
    # quality: output statistics
    "llm_telemetry.quality.output_stat.name",
    "llm_telemetry.quality.output_stat.direction",
    "llm_telemetry.quality.output_stat.before",
    "llm_telemetry.quality.output_stat.after",
    "llm_telemetry.quality.output_stat.change_start",
    "llm_telemetry.quality.output_stat.change_trace_id",
    "llm_telemetry.quality.output_stat.calls_since_change",
    "llm_telemetry.quality.output_stat.detected_at",
    "llm_telemetry.quality.output_stat.detected_trace_id",
    "llm_telemetry.quality.output_stat.threshold",
    "llm_telemetry.quality.output_stat.ert_calls",
    "llm_telemetry.quality.output_stat.state",
    # quality: live output validators and their pass-rate drop detector
    "llm_telemetry.validation.start_time",
    "llm_telemetry.validation.first_trace_id",
    "llm_telemetry.validation.pass_rate_before",
    "llm_telemetry.validation.pass_rate_after",
    "llm_telemetry.validation.checks_before",
    "llm_telemetry.validation.checks_after",
    "llm_telemetry.validation.failures_after",
    "llm_telemetry.validation.baseline_pass_rate",
    "llm_telemetry.validation.example_trace_ids_before",
    "llm_telemetry.validation.example_trace_ids_after",
    "llm_telemetry.validation.alert_time",
    "llm_telemetry.validation.false_alarm_checks",
    # drop accounting
    "llm_telemetry.dropped.reason",
    # pipeline
    "llm_telemetry.enriched",
    "llm_telemetry.prompt.fingerprint",
    # quality alerts (key.* and detail.* are families: key.feature, key.model, detail.pass_rate_before …)
    "llm_telemetry.alert.name",
    "llm_telemetry.alert.state",
    "llm_telemetry.alert.summary",
    "llm_telemetry.alert.started_at",
    "llm_telemetry.alert.example_trace_ids",
    "llm_telemetry.alert.baseline_trace_ids",
    # golden-dataset evaluation and canaries
    "llm_telemetry.eval.dataset",
    "llm_telemetry.eval.case.id",
    "llm_telemetry.eval.case.passed",
    "llm_telemetry.eval.case.score",
    "llm_telemetry.eval.cases",
    "llm_telemetry.eval.passed_cases",
    "llm_telemetry.eval.failed_cases",
    "llm_telemetry.eval.error_cases",
    "llm_telemetry.eval.pass_rate",
    "llm_telemetry.eval.score",
    "llm_telemetry.eval.outcome",
    "llm_telemetry.canary.changed_cases",
    "llm_telemetry.canary.pass_rate.before",
    "llm_telemetry.canary.pass_rate.after",
    "llm_telemetry.canary.last_good_time",
    # feedback and sessions
    "llm_telemetry.feedback.kind",
    "llm_telemetry.feedback.category",
    "llm_telemetry.feedback.matched",
    "llm_telemetry.session.outcome",
    "llm_telemetry.session.end_reason",
    # gateway (llm-telemetry collector) self-metrics
    "llm_telemetry.gateway.signal",
    "llm_telemetry.gateway.reason",
    "llm_telemetry.gateway.queue.location",
]

FEATURE: Final = "llm_telemetry.feature"
ALERT_NAME: Final = "llm_telemetry.alert.name"
ALERT_STATE: Final = "llm_telemetry.alert.state"
"""``firing`` when an episode starts, ``resolved`` when it ends."""
ALERT_SUMMARY: Final = "llm_telemetry.alert.summary"
ALERT_STARTED_AT: Final = "llm_telemetry.alert.started_at"
"""Estimated start of the change (ISO 8601, UTC): the first affected call, not when it was noticed."""
ALERT_EXAMPLE_TRACE_IDS: Final = "llm_telemetry.alert.example_trace_ids"
ALERT_BASELINE_TRACE_IDS: Final = "llm_telemetry.alert.baseline_trace_ids"
ALERT_KEY_PREFIX: Final = "llm_telemetry.alert.key."
ALERT_DETAIL_PREFIX: Final = "llm_telemetry.alert.detail."
ENRICHED: Final = "llm_telemetry.enriched"
PROMPT_FINGERPRINT: Final = "llm_telemetry.prompt.fingerprint"
"""A short keyed hash of the prompt (never the prompt): finds identical prompts sent in a loop."""
"""Set on a span whose call went through the enricher chain, so no later stage (our span processor, the
gateway) enriches it twice."""
STREAM_CHUNK_COUNT: Final = "llm_telemetry.stream.chunk_count"
STREAM_TBT_MEAN: Final = "llm_telemetry.stream.tbt.mean"
STREAM_TBT_P50: Final = "llm_telemetry.stream.tbt.p50"
STREAM_TBT_P95: Final = "llm_telemetry.stream.tbt.p95"
STREAM_TBT_P99: Final = "llm_telemetry.stream.tbt.p99"
STREAM_TBT_MAX: Final = "llm_telemetry.stream.tbt.max"
STREAM_STALL_COUNT: Final = "llm_telemetry.stream.stall_count"
STREAM_OUTPUT_TOKENS_PER_SECOND: Final = "llm_telemetry.stream.output_tokens_per_second"
STREAM_END_REASON: Final = "llm_telemetry.stream.end_reason"
"""How the stream ended: ``completed``, ``error``, ``closed_early``, ``app_exception``, ``cancelled``, ``abandoned``
(garbage collected), ``process_exit``; see ``llm_telemetry.instrumentation._call.STATUS_RULE``."""
CALL_END_REASON: Final = "llm_telemetry.call.end_reason"
"""A non-streamed call that did not complete and did not fail: ``cancelled`` (``STATUS_RULE``)."""
USAGE_OUTPUT_TOKENS_ESTIMATED: Final = "llm_telemetry.usage.output_tokens_estimated"
"""The output count is our estimate (``llm_telemetry.usage.output_tokens_estimate``; a stream without usage)."""
USAGE_INPUT_TOKENS_ESTIMATED: Final = "llm_telemetry.usage.input_tokens_estimated"
"""The input count is our estimate from the request (``llm_telemetry.usage.input_tokens_estimate``: ~4 characters
per token over the message text, plus a few per message); not recorded in the semconv histogram."""
USAGE_INVALID: Final = "llm_telemetry.usage.invalid"
"""Names of the usage attributes (``gen_ai.usage.input_tokens`` …) whose reported value was rejected as
negative, non-integral, boolean or absurd (> ``llm_telemetry.record.MAX_TOKEN_COUNT``); they are left unset."""
USAGE_INPUT_TOKENS_ESTIMATE: Final = "llm_telemetry.usage.input_tokens_estimate"
"""Our estimate of the input tokens of a stream that reported no usage; like the output estimate, never put in
``gen_ai.usage.input_tokens`` (backends read that as the provider's count)."""
USAGE_OUTPUT_TOKENS_ESTIMATE: Final = "llm_telemetry.usage.output_tokens_estimate"
"""Our estimate of the output tokens of a stream that reported no usage (chunks and characters).

It is never put in ``gen_ai.usage.output_tokens``: backends read that as the provider's count (Arize
Phoenix turns it into ``llm.token_count.completion``), and the token-usage metric counts only reported
tokens too. The cost of such a call is computed from the estimate (``llm_telemetry.cost.*``)."""
CONTENT_TRUNCATED: Final = "llm_telemetry.content.truncated"

COST_TOTAL_USD: Final = "llm_telemetry.cost.total_usd"
COST_INPUT_USD: Final = "llm_telemetry.cost.input_usd"
COST_OUTPUT_USD: Final = "llm_telemetry.cost.output_usd"
COST_CACHE_READ_USD: Final = "llm_telemetry.cost.cache_read_usd"
COST_CACHE_WRITE_USD: Final = "llm_telemetry.cost.cache_write_usd"
COST_PRICING_MODEL: Final = "llm_telemetry.cost.pricing_model"
COST_PRICING_SOURCE: Final = "llm_telemetry.cost.pricing_source"
COST_UNKNOWN_MODEL: Final = "llm_telemetry.cost.unknown_model"
COST_ESTIMATED: Final = "llm_telemetry.cost.estimated"
"""The price rests on estimated token counts (a stream without usage): never a silent zero, never passed off as exact."""

BUDGET_SCOPE: Final = "llm_telemetry.budget.scope"
BUDGET_LEVEL: Final = "llm_telemetry.budget.level"
BUDGET_LIMIT_USD: Final = "llm_telemetry.budget.limit_usd"
BUDGET_SPENT_USD: Final = "llm_telemetry.budget.spent_usd"
BUDGET_WINDOW_START: Final = "llm_telemetry.budget.window_start"

SAFETY_FLAGGED: Final = "llm_telemetry.safety.flagged"
SAFETY_ACTION: Final = "llm_telemetry.safety.action"
SAFETY_CATEGORIES: Final = "llm_telemetry.safety.categories"
SAFETY_PATTERN_IDS: Final = "llm_telemetry.safety.pattern_ids"
SAFETY_MATCHES: Final = "llm_telemetry.safety.matches"
"""The matched text; only set when content capture is on."""
SAFETY_JUDGE_SAMPLED: Final = "llm_telemetry.safety.judge.sampled"
SAFETY_JUDGE_FLAGGED: Final = "llm_telemetry.safety.judge.flagged"
SAFETY_JUDGE_CATEGORY: Final = "llm_telemetry.safety.judge.category"
SAFETY_CATEGORY: Final = "llm_telemetry.safety.category"
"""One category (metric attribute of ``llm_telemetry.safety.flags``); spans carry the list in ``.categories``."""
SAFETY_ERROR: Final = "llm_telemetry.safety.error"
SAFETY_DEFERRED_CHARS: Final = "llm_telemetry.safety.deferred_chars"
"""Characters past ``safety.inline_screen_chars`` screened after the span was exported (the verdict on the
span covers the rest; a late finding goes to the flags metric and the review queue)."""
"""Why a screen or judge could not give a clean answer (e.g. ``re2_set_out_of_memory``); never silent."""
DROPPED_REASON: Final = "llm_telemetry.dropped.reason"
GATEWAY_SIGNAL: Final = "llm_telemetry.gateway.signal"
"""``traces``, ``metrics`` or ``logs``: which OTLP signal a gateway count is about."""
GATEWAY_REASON: Final = "llm_telemetry.gateway.reason"
"""Why the gateway refused a request: ``malformed``, ``oversized``, ``unsupported_media_type``, ``unauthenticated``,
``queue_full``, ``shutting_down``."""
GATEWAY_QUEUE_LOCATION: Final = "llm_telemetry.gateway.queue.location"
"""``memory`` or ``disk`` (the spill directory)."""

EVAL_DATASET: Final = "llm_telemetry.eval.dataset"
EVAL_CASE_ID: Final = "llm_telemetry.eval.case.id"
EVAL_CASE_PASSED: Final = "llm_telemetry.eval.case.passed"
EVAL_CASE_SCORE: Final = "llm_telemetry.eval.case.score"
EVAL_CASES: Final = "llm_telemetry.eval.cases"
EVAL_PASSED_CASES: Final = "llm_telemetry.eval.passed_cases"
EVAL_FAILED_CASES: Final = "llm_telemetry.eval.failed_cases"
EVAL_ERROR_CASES: Final = "llm_telemetry.eval.error_cases"
EVAL_PASS_RATE: Final = "llm_telemetry.eval.pass_rate"
EVAL_SCORE: Final = "llm_telemetry.eval.score"
"""Mean case score of an evaluation run (cases whose target raised count as 0)."""
EVAL_OUTCOME: Final = "llm_telemetry.eval.outcome"
"""``pass``, ``fail`` or ``error`` (the target raised): attribute of the ``llm_telemetry.eval.cases`` metric."""
CANARY_CHANGED_CASES: Final = "llm_telemetry.canary.changed_cases"
CANARY_PASS_RATE_BEFORE: Final = "llm_telemetry.canary.pass_rate.before"
CANARY_PASS_RATE_AFTER: Final = "llm_telemetry.canary.pass_rate.after"
CANARY_LAST_GOOD_TIME: Final = "llm_telemetry.canary.last_good_time"
FEEDBACK_KIND: Final = "llm_telemetry.feedback.kind"
"""``thumbs_up``, ``thumbs_down``, ``correction`` or ``report``."""
FEEDBACK_CATEGORY: Final = "llm_telemetry.feedback.category"
FEEDBACK_MATCHED: Final = "llm_telemetry.feedback.matched"
"""Whether the feedback was tied to a known call (trace/span ids found)."""
SESSION_OUTCOME: Final = "llm_telemetry.session.outcome"
"""``completed`` or ``abandoned``."""
SESSION_END_REASON: Final = "llm_telemetry.session.end_reason"
"""``task_complete``, ``abandon`` (explicit events), ``idle_timeout`` or ``evicted`` (never ended, counted abandoned)."""
QUALITY_MODEL_VERSION_DIMENSION: Final = "llm_telemetry.quality.model_version.dimension"
"""What changed: ``response_model``, ``system_fingerprint`` or ``response_id_shape``."""
QUALITY_MODEL_VERSION_PREVIOUS: Final = "llm_telemetry.quality.model_version.previous"
"""The values seen before (string array; ``<absent>`` for a call that returned none)."""
QUALITY_MODEL_VERSION_NEW: Final = "llm_telemetry.quality.model_version.new"
QUALITY_MODEL_VERSION_FIRST_SEEN: Final = "llm_telemetry.quality.model_version.first_seen"
"""ISO 8601 end time of the first call that returned the new value."""
QUALITY_MODEL_VERSION_TRACE_ID: Final = "llm_telemetry.quality.model_version.trace_id"
"""Trace id (32 hex digits) of that first call."""
QUALITY_MODEL_VERSION_BASELINE_CALLS: Final = "llm_telemetry.quality.model_version.baseline_calls"

QUALITY_OUTPUT_STAT_NAME: Final = "llm_telemetry.quality.output_stat.name"
"""``output_chars``, ``output_tokens``, ``refusal``, ``finish_length``, ``json_invalid``, ``language_other``."""
QUALITY_OUTPUT_STAT_DIRECTION: Final = "llm_telemetry.quality.output_stat.direction"
QUALITY_OUTPUT_STAT_BEFORE: Final = "llm_telemetry.quality.output_stat.before"
QUALITY_OUTPUT_STAT_AFTER: Final = "llm_telemetry.quality.output_stat.after"
QUALITY_OUTPUT_STAT_CHANGE_START: Final = "llm_telemetry.quality.output_stat.change_start"
"""ISO 8601 end time of the first call after the estimated change point."""
QUALITY_OUTPUT_STAT_CHANGE_TRACE_ID: Final = "llm_telemetry.quality.output_stat.change_trace_id"
QUALITY_OUTPUT_STAT_CALLS_SINCE_CHANGE: Final = "llm_telemetry.quality.output_stat.calls_since_change"
QUALITY_OUTPUT_STAT_DETECTED_AT: Final = "llm_telemetry.quality.output_stat.detected_at"
QUALITY_OUTPUT_STAT_DETECTED_TRACE_ID: Final = "llm_telemetry.quality.output_stat.detected_trace_id"
QUALITY_OUTPUT_STAT_THRESHOLD: Final = "llm_telemetry.quality.output_stat.threshold"
QUALITY_OUTPUT_STAT_ERT_CALLS: Final = "llm_telemetry.quality.output_stat.ert_calls"
QUALITY_OUTPUT_STAT_STATE: Final = "llm_telemetry.quality.output_stat.state"
"""``alert`` or ``recovered`` (metric attribute of ``llm_telemetry.quality.output_stat.alerts``)."""
# Validation results use the semconv names (EVALUATION_*); these describe a pass-rate drop alert. The
# alert's feature is FEATURE and its validator EVALUATION_NAME.
VALIDATION_START_TIME: Final = "llm_telemetry.validation.start_time"
"""Estimated start of the drop (ISO 8601): end time of the first affected call (the CUSUM change point)."""
VALIDATION_FIRST_TRACE_ID: Final = "llm_telemetry.validation.first_trace_id"
"""Trace id (32 hex digits) of that first affected call."""
VALIDATION_PASS_RATE_BEFORE: Final = "llm_telemetry.validation.pass_rate_before"
VALIDATION_PASS_RATE_AFTER: Final = "llm_telemetry.validation.pass_rate_after"
VALIDATION_CHECKS_BEFORE: Final = "llm_telemetry.validation.checks_before"
VALIDATION_CHECKS_AFTER: Final = "llm_telemetry.validation.checks_after"
"""Checks from the estimated start to the alert (or, on recovery, to the recovery), both included."""
VALIDATION_FAILURES_AFTER: Final = "llm_telemetry.validation.failures_after"
VALIDATION_BASELINE_PASS_RATE: Final = "llm_telemetry.validation.baseline_pass_rate"
VALIDATION_EXAMPLE_TRACE_IDS_BEFORE: Final = "llm_telemetry.validation.example_trace_ids_before"
"""A few passing calls just before the estimated start."""
VALIDATION_EXAMPLE_TRACE_IDS_AFTER: Final = "llm_telemetry.validation.example_trace_ids_after"
"""The first failing calls from the estimated start on."""
VALIDATION_ALERT_TIME: Final = "llm_telemetry.validation.alert_time"
VALIDATION_FALSE_ALARM_CHECKS: Final = "llm_telemetry.validation.false_alarm_checks"
"""Expected checks between false alarms of the chart that raised the alert (its exact in-control ARL)."""

EVALUATION_LABEL_PASS: Final = "pass"
EVALUATION_LABEL_FAIL: Final = "fail"
"""Values of ``gen_ai.evaluation.score.label`` for validator results."""

# --- span events ------------------------------------------------------------------------------------
EventName = Literal[
    "llm_telemetry.first_token",
    "llm_telemetry.stall",
    "llm_telemetry.stream_end",
    "llm_telemetry.chunk",
    "llm_telemetry.budget.crossed",
    "llm_telemetry.safety.judge_verdict",
    "llm_telemetry.alert",
    "gen_ai.client.inference.operation.details",
    "gen_ai.evaluation.result",
    "llm_telemetry.feedback",
    "llm_telemetry.canary.regression",
    "llm_telemetry.canary.recovered",
    "llm_telemetry.quality.model_version_changed",
    "llm_telemetry.quality.output_stat.alert",
    "llm_telemetry.quality.output_stat.recovered",
    "llm_telemetry.validation.pass_rate_drop",
    "llm_telemetry.validation.pass_rate_recovered",
]
EVENT_FIRST_TOKEN: Final = "llm_telemetry.first_token"
EVENT_STALL: Final = "llm_telemetry.stall"
EVENT_STREAM_END: Final = "llm_telemetry.stream_end"
EVENT_CHUNK: Final = "llm_telemetry.chunk"
EVENT_BUDGET_CROSSED: Final = "llm_telemetry.budget.crossed"
EVENT_JUDGE_VERDICT: Final = "llm_telemetry.safety.judge_verdict"
EVENT_ALERT: Final = "llm_telemetry.alert"
"""A quality alert firing or resolving: span event on the call that decided it, and a log record's event name."""
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
"""The semconv event that carries content when capture is EVENT_ONLY / SPAN_AND_EVENT."""
EVENT_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"
"""The semconv evaluation event (``gen_ai.evaluation.name``/``.score.value``/``.score.label``/``.explanation``)."""
EVENT_FEEDBACK: Final = "llm_telemetry.feedback"
"""Log record (event name) of one user feedback, emitted in the trace of the call it is about."""
EVENT_CANARY_REGRESSION: Final = "llm_telemetry.canary.regression"
EVENT_CANARY_RECOVERED: Final = "llm_telemetry.canary.recovered"
EVENT_MODEL_VERSION_CHANGED: Final = "llm_telemetry.quality.model_version_changed"
EVENT_OUTPUT_STAT_ALERT: Final = "llm_telemetry.quality.output_stat.alert"
EVENT_OUTPUT_STAT_RECOVERED: Final = "llm_telemetry.quality.output_stat.recovered"
"""The semconv event of one evaluation (here: one validator on one output)."""
EVENT_PASS_RATE_DROP: Final = "llm_telemetry.validation.pass_rate_drop"
EVENT_PASS_RATE_RECOVERED: Final = "llm_telemetry.validation.pass_rate_recovered"

# event attribute keys
EVENT_STALL_SECONDS: Final = "llm_telemetry.stall.seconds"
EVENT_STALL_CHUNK_INDEX: Final = "llm_telemetry.stall.chunk_index"
EVENT_STALL_AT_SECONDS: Final = "llm_telemetry.stall.at_seconds"
EVENT_CHUNK_INDEX: Final = "llm_telemetry.chunk.index"
EVENT_CHUNK_GAP_SECONDS: Final = "llm_telemetry.chunk.gap_seconds"

# --- metrics ----------------------------------------------------------------------------------------
# Semconv v1.41 client metrics. The newer conventions rename these to gen_ai.client.inference.*; change
# them here and nowhere else.
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
"""One point per gap between consecutive content chunks (the conventions' meaning), recorded when the stream
ends. With ``LLM_TELEMETRY_STREAM_PER_CHUNK_METRIC=false`` it is one point per stream holding the stream's mean
gap instead: cheaper for very long streams, but a deviation (counts are streams, percentiles are of means)."""

# Our metrics.
METRIC_COST: Final = "llm_telemetry.cost"
METRIC_TOKENS: Final = "llm_telemetry.tokens"
METRIC_UNKNOWN_MODEL: Final = "llm_telemetry.cost.unknown_model"
METRIC_BUDGET_CROSSINGS: Final = "llm_telemetry.budget.crossings"
METRIC_SAFETY_CHECKS: Final = "llm_telemetry.safety.checks"
METRIC_SAFETY_FLAGS: Final = "llm_telemetry.safety.flags"
METRIC_JUDGE_VERDICTS: Final = "llm_telemetry.safety.judge.verdicts"
METRIC_REVIEW_QUEUE_SIZE: Final = "llm_telemetry.review.queue_size"
METRIC_DROPPED: Final = "llm_telemetry.dropped"
"""Everything dropped anywhere (full queues, side-channel overflow, export failures), by reason."""
METRIC_STREAM_STALLS: Final = "llm_telemetry.stream.stalls"
METRIC_QUALITY_ALERTS: Final = "llm_telemetry.quality.alerts"
METRIC_QUALITY_ALERTS_ACTIVE: Final = "llm_telemetry.quality.alerts.active"
METRIC_DRIFT_SCORE: Final = "llm_telemetry.quality.drift.score"
"""Online MMD² of the test window against the reference, per feature and model."""
METRIC_DRIFT_THRESHOLD: Final = "llm_telemetry.quality.drift.threshold"
"""The ERT-calibrated threshold the score is compared with (drift when score > threshold)."""
METRIC_EVAL_CASES: Final = "llm_telemetry.eval.cases"
"""Evaluated golden-dataset cases, by dataset and outcome (pass / fail / error)."""
METRIC_EVAL_PASS_RATE: Final = "llm_telemetry.eval.pass_rate"
METRIC_CANARY_ALERTS: Final = "llm_telemetry.canary.alerts"
METRIC_CANARY_REGRESSED: Final = "llm_telemetry.canary.regressed"
METRIC_FEEDBACK: Final = "llm_telemetry.feedback"
METRIC_FEEDBACK_CALLS: Final = "llm_telemetry.feedback.calls"
"""GenAI calls seen by the feedback tracker, by feature: the denominator of the feedback rate."""
METRIC_FEEDBACK_SATISFACTION: Final = "llm_telemetry.feedback.satisfaction_rate"
METRIC_FEEDBACK_RATE: Final = "llm_telemetry.feedback.rate"
METRIC_SESSIONS: Final = "llm_telemetry.sessions"
METRIC_SESSION_TURNS: Final = "llm_telemetry.session.turns"
METRIC_SESSION_COMPLETION_RATE: Final = "llm_telemetry.session.completion_rate"
METRIC_SESSION_ABANDONMENT_RATE: Final = "llm_telemetry.session.abandonment_rate"
METRIC_SESSION_ACTIVE: Final = "llm_telemetry.session.active"
METRIC_OUTPUT_STAT_VALUE: Final = "llm_telemetry.quality.output_stat.value"
"""Gauge: recent value of each output statistic (mean length, or rate) per feature and request model."""
METRIC_VALIDATION_CHECKS: Final = "llm_telemetry.validation.checks"
"""Validator results (counter, unit ``{check}``) by FEATURE, EVALUATION_NAME and EVALUATION_SCORE_LABEL: the pass rate
per feature and validator is its ``pass`` share."""
METRIC_VALIDATION_ERRORS: Final = "llm_telemetry.validation.errors"
"""Calls on which a validator raised (counter, unit ``{error}``) by EVALUATION_NAME."""

# The gateway's (`llm-telemetry collector`) own metrics; what it drops goes to METRIC_DROPPED (reasons gateway_*).
METRIC_GATEWAY_RECEIVED: Final = "llm_telemetry.gateway.received"
"""Spans, metric data points and log records accepted, by ``llm_telemetry.gateway.signal``."""
METRIC_GATEWAY_ENRICHED: Final = "llm_telemetry.gateway.enriched"
"""GenAI spans the gateway ran through the enricher chain (spans already enriched in-process are not counted)."""
METRIC_GATEWAY_EXPORTED: Final = "llm_telemetry.gateway.exported"
"""Items the upstream accepted, by signal."""
METRIC_GATEWAY_REFUSED: Final = "llm_telemetry.gateway.refused"
"""Requests answered with an error status, by ``llm_telemetry.gateway.reason``."""
METRIC_GATEWAY_QUEUE_SIZE: Final = "llm_telemetry.gateway.queue.size"
"""Bytes waiting for the upstream, by ``llm_telemetry.gateway.queue.location``."""

# Semconv histogram bucket boundaries.
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
TIME_TO_FIRST_CHUNK_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
TIME_PER_CHUNK_BUCKETS: Final = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

# --- baggage keys (user attribution propagated across services) ---------------------------------------
BAGGAGE_USER_ID: Final = "user.id"
BAGGAGE_SESSION_ID: Final = "session.id"
BAGGAGE_CONVERSATION_ID: Final = "gen_ai.conversation.id"
BAGGAGE_FEATURE: Final = "llm_telemetry.feature"
