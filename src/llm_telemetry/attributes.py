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
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

CONTENT_ATTRIBUTES: Final = frozenset(
    {
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
ANTHROPIC_CACHE_WRITE_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
"""What the Anthropic SDK's native tracing calls cache-creation tokens."""

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
    # drop accounting
    "llm_telemetry.dropped.reason",
]

FEATURE: Final = "llm_telemetry.feature"
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
"""``gen_ai.usage.output_tokens`` is our estimate (a stream without usage); not recorded in the semconv histogram."""
USAGE_INPUT_TOKENS_ESTIMATED: Final = "llm_telemetry.usage.input_tokens_estimated"
"""``gen_ai.usage.input_tokens`` is our estimate from the request (a stream without usage: ~4 characters per
token over the message text, plus a few per message); not recorded in the semconv histogram."""
USAGE_INVALID: Final = "llm_telemetry.usage.invalid"
"""Names of the usage attributes (``gen_ai.usage.input_tokens`` …) whose reported value was rejected as
negative, non-integral, boolean or absurd (> ``llm_telemetry.record.MAX_TOKEN_COUNT``); they are left unset."""
CONTENT_TRUNCATED: Final = "llm_telemetry.content.truncated"

COST_TOTAL_USD: Final = "llm_telemetry.cost.total_usd"
COST_INPUT_USD: Final = "llm_telemetry.cost.input_usd"
COST_OUTPUT_USD: Final = "llm_telemetry.cost.output_usd"
COST_CACHE_READ_USD: Final = "llm_telemetry.cost.cache_read_usd"
COST_CACHE_WRITE_USD: Final = "llm_telemetry.cost.cache_write_usd"
COST_PRICING_MODEL: Final = "llm_telemetry.cost.pricing_model"
COST_PRICING_SOURCE: Final = "llm_telemetry.cost.pricing_source"
COST_UNKNOWN_MODEL: Final = "llm_telemetry.cost.unknown_model"

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
"""Why a screen or judge could not give a clean answer (e.g. ``re2_set_out_of_memory``); never silent."""
DROPPED_REASON: Final = "llm_telemetry.dropped.reason"

# --- span events ------------------------------------------------------------------------------------
EventName = Literal[
    "llm_telemetry.first_token",
    "llm_telemetry.stall",
    "llm_telemetry.stream_end",
    "llm_telemetry.chunk",
    "llm_telemetry.budget.crossed",
    "llm_telemetry.safety.judge_verdict",
    "gen_ai.client.inference.operation.details",
]
EVENT_FIRST_TOKEN: Final = "llm_telemetry.first_token"
EVENT_STALL: Final = "llm_telemetry.stall"
EVENT_STREAM_END: Final = "llm_telemetry.stream_end"
EVENT_CHUNK: Final = "llm_telemetry.chunk"
EVENT_BUDGET_CROSSED: Final = "llm_telemetry.budget.crossed"
EVENT_JUDGE_VERDICT: Final = "llm_telemetry.safety.judge_verdict"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
"""The semconv event that carries content when capture is EVENT_ONLY / SPAN_AND_EVENT."""

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
