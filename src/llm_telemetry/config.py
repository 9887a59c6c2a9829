"""llm-telemetry settings: one declarative table, read from defaults, an optional file, then env vars.

Every setting has a section and a key. Its environment variable is ``LLM_TELEMETRY_<SECTION>_<KEY>``
upper-cased (``budget.daily_usd`` → ``LLM_TELEMETRY_BUDGET_DAILY_USD``); in the config file (TOML or
YAML, path in ``LLM_TELEMETRY_CONFIG``) it is ``[section] key = value``. Environment beats file beats
default. Content capture is the one exception: it is read from the standard
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable (and ``content.capture`` in the file).

Bad input fails at start-up with a `ConfigError` naming the key, the bad value and where it came from
(the env var, or the file and line). Unknown keys in the file are errors too: a typo must not silently
turn a budget off.
"""

from __future__ import annotations

import enum
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_FILE_ENV = "LLM_TELEMETRY_CONFIG"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_PREFIX = "LLM_TELEMETRY_"


class ConfigError(ValueError):
    """A setting has a bad value; the message names the setting, the value and its origin."""


class ContentCapture(enum.Enum):
    """Where prompt and output content is exported (the GenAI instrumentations' standard values)."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def enabled(self) -> bool:
        return self is not ContentCapture.NO_CONTENT


# --- parsers: each takes the raw value (str from env, native from file) and raises ValueError ---------

def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _number(minimum: float | None = None, maximum: float | None = None, allow_none: bool = False) -> Callable[[Any], float | None]:
    def parse(raw: Any) -> float | None:
        if allow_none and (raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "off"))):
            return None
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= {minimum:g}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum:g}")
        return value

    return parse


def _integer(minimum: int = 0) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        try:
            value = int(str(raw).strip()) if not isinstance(raw, int) else raw
        except ValueError:
            raise ValueError("expected an integer") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    return parse


def _text(raw: Any) -> str:
    if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
        raise ValueError("expected a string")
    return str(raw).strip()


def _optional_path(raw: Any) -> Path | None:
    text = _text(raw)
    return Path(text).expanduser() if text else None


def _names(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    out = tuple(str(item).strip() for item in items if str(item).strip())
    for item in out:
        if not re.fullmatch(r"[A-Za-z0-9_.:\-]+", item):
            raise ValueError(f"{item!r} is not a valid name")
    return out


def _amounts(raw: Any) -> dict[str, float]:
    """``feature=amount,...`` (env) or a table (file) of non-negative USD amounts."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    else:
        pairs = []
        for item in str(raw).split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise ValueError(f"{item.strip()!r} is not name=amount")
            name, _, amount = item.partition("=")
            pairs.append((name.strip(), amount.strip()))
    parse = _number(minimum=0)
    return {str(name): parse(amount) for name, amount in pairs}  # type: ignore[misc]


REPORT_THRESHOLD_METRICS = ("ttft_p95", "ttft_p99", "tbt_p95", "tbt_p99", "duration_p95", "error_rate")


def _thresholds(raw: Any) -> dict[str, float]:
    """``feature.metric=value,...``: per-endpoint thresholds (the source: a chat endpoint is not a batch job)."""
    values = _amounts(raw)
    for name in values:
        feature, _, metric = name.rpartition(".")
        if not feature or metric not in REPORT_THRESHOLD_METRICS:
            raise ValueError(f"{name!r} is not feature.metric with metric one of {', '.join(REPORT_THRESHOLD_METRICS)}")
    return values


def _timezone(raw: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = _text(raw)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a known IANA time zone (e.g. UTC, Europe/Paris)") from None
    return text


def _capture(raw: Any) -> ContentCapture:
    if isinstance(raw, ContentCapture):
        return raw
    text = str(raw).strip()
    upper = text.upper()
    if upper in ContentCapture.__members__:
        return ContentCapture[upper]
    try:
        return ContentCapture.SPAN_ONLY if _bool(text) else ContentCapture.NO_CONTENT
    except ValueError:
        raise ValueError("expected true, false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY or SPAN_AND_EVENT") from None


def _setting(default: Any, parse: Callable[[Any], Any], doc: str) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc})


def _setting_factory(factory: Callable[[], Any], parse: Callable[[Any], Any], doc: str) -> Any:
    return field(default_factory=factory, metadata={"parse": parse, "doc": doc})


# --- the table --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContentSettings:
    capture: ContentCapture = _setting(
        ContentCapture.NO_CONTENT, _capture,
        "Export prompts/outputs: false/NO_CONTENT (default), true/SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT. "
        f"Read from {CAPTURE_CONTENT_ENV}.",
    )
    max_chars: int = _setting(16384, _integer(64), "Truncate each exported content attribute to this many characters.")


@dataclass(frozen=True)
class StreamSettings:
    stall_threshold_s: float = _setting(0.5, _number(minimum=0.001), "A gap between chunks longer than this is a stall (span event).")
    chunk_events: bool = _setting(False, _bool, "Add one span event per streamed chunk (verbose).")
    per_chunk_metric: bool = _setting(
        True, _bool,
        "Record gen_ai.client.operation.time_per_output_chunk once per gap between chunks, as the semantic conventions "
        "define it (default; ~7 µs CPU per chunk, ~8 % of the SDK's own per-chunk cost, spent once at the stream's end). "
        "false: once per stream with the stream's mean gap, a documented deviation (the histogram then counts streams).",
    )


@dataclass(frozen=True)
class OpenAISettings:
    stream_include_usage: bool = _setting(
        False, _bool,
        "Add stream_options={include_usage: true} to OpenAI chat streams that set no stream_options, for exact token "
        "counts (the app then receives one extra final chunk with empty choices). Off: input tokens of such streams "
        "are estimated and flagged llm_telemetry.usage.input_tokens_estimated.",
    )


@dataclass(frozen=True)
class ExportSettings:
    timeout_s: float = _setting(2.0, _number(minimum=0.05), "Deadline for one OTLP export, retries included.")
    shutdown_timeout_s: float = _setting(
        0.5, _number(minimum=0.0),
        "Time allowed at process exit to flush what is left (all signals together); what is not sent by then is dropped.",
    )
    retry_backoff_s: float = _setting(
        5.0, _number(minimum=0.0),
        "After a failed export, exports wait this long (the circuit is open) instead of retrying at once.",
    )
    retry_buffer_items: int = _setting(
        2048, _integer(0),
        "Spans (and log records) of failed or skipped exports kept and re-sent with the next export; beyond it the "
        "oldest are dropped and counted. 0: no retry.",
    )


@dataclass(frozen=True)
class PipelineSettings:
    enrichers: tuple[str, ...] = _setting(
        ("cost", "budget", "safety", "quality", "openinference"), _names,
        "Ordered enricher names (entry-point group llm_telemetry_enrichers).",
    )
    worker_queue_size: int = _setting(
        1000, _integer(1), "Bound of each background lane's queue (judge, review, quality); overflow is dropped and counted.",
    )


@dataclass(frozen=True)
class CostSettings:
    pricing_file: Path | None = _setting(None, _optional_path, "TOML/JSON pricing file that overrides or extends the bundled table.")
    user_dimension: bool = _setting(
        True, _bool,
        "Put user.id on the cost/token metrics (per-user breakdown; high cardinality: one series per user).",
    )


@dataclass(frozen=True)
class BudgetSettings:
    daily_usd: float | None = _setting(
        None, _number(minimum=0, allow_none=True), "Daily spend budget (warning at warning_ratio, critical at 100 %)."
    )
    user_hourly_usd: float | None = _setting(None, _number(minimum=0, allow_none=True), "Per-user spend limit per hour.")
    feature_daily_usd: dict[str, float] = _setting_factory(dict, _amounts, "Per-feature daily budgets, `feature=usd,...`.")
    warning_ratio: float = _setting(0.8, _number(minimum=0.01, maximum=1.0), "Fraction of a budget that raises the warning.")
    timezone: str = _setting("UTC", _timezone, "Time zone in which daily and hourly windows roll.")
    max_tracked_users: int = _setting(100_000, _integer(1), "Cap on per-user spend entries held in memory (LRU).")


@dataclass(frozen=True)
class SafetySettings:
    enabled: bool = _setting(True, _bool, "Screen every GenAI output with the pattern set.")
    patterns_file: Path | None = _setting(None, _optional_path, "TOML/YAML file adding patterns (id, category, action, regex).")
    disabled_patterns: tuple[str, ...] = _setting((), _names, "Pattern ids or categories to turn off.")
    screen_prompts: bool = _setting(False, _bool, "Screen prompts too (e.g. for prompt-injection markers).")
    block_rate_alert: float = _setting(0.001, _number(minimum=0, maximum=1), "Hard-block rate above which the safety report alerts.")
    max_mem_mb: int = _setting(64, _integer(8), "Memory for the RE2 pattern-set DFA (re2 reports no match when it runs out).")
    inline_screen_chars: int = _setting(
        65536, _integer(4096),
        "Characters of an output (and prompt) screened on the thread that ends the span; the rest is screened in the background.",
    )
    refusal_message: str = _setting(
        "This content is not available.", _text, "What `llm_telemetry.guard` suggests serving instead of a blocked output.",
    )


@dataclass(frozen=True)
class JudgeSettings:
    sample_rate: float = _setting(0.0, _number(minimum=0, maximum=1), "Fraction of GenAI outputs sent to the LLM judge.")
    callable: str = _setting("default", _text, "`default` (OpenAI-compatible model), `none`, or `module:function`.")
    model: str = _setting("gpt-4o-mini", _text, "Model the default judge asks.")
    base_url: str = _setting("", _text, "Base URL for the default judge's OpenAI client (empty: the SDK's default).")
    prompt_file: Path | None = _setting(None, _optional_path, "Prompt template for the default judge.")
    timeout_s: float = _setting(
        20.0, _number(minimum=0.1), "Deadline for one call of the default judge (it runs on the background worker).",
    )


@dataclass(frozen=True)
class ReviewSettings:
    db_path: Path = _setting(
        Path("~/.local/state/llm-telemetry/review.db").expanduser(), lambda raw: _optional_path(raw) or Path("review.db"),
        "SQLite file of the human review queue.",
    )


ATTRIBUTION_BAGGAGE_KEYS = ("user.id", "session.id", "gen_ai.conversation.id", "llm_telemetry.feature")
"""The baggage keys `llm_telemetry.attribute` writes (and may read back when inbound baggage is trusted)."""


def _baggage_keys(raw: Any) -> tuple[str, ...]:
    keys = _names(raw)
    for key in keys:
        if key not in ATTRIBUTION_BAGGAGE_KEYS:
            raise ValueError(f"{key!r} is not an attribution baggage key (known: {', '.join(ATTRIBUTION_BAGGAGE_KEYS)})")
    return keys


@dataclass(frozen=True)
class AttributionSettings:
    trust_baggage: bool = _setting(
        False, _bool,
        "Take user/session/conversation/feature from inbound W3C baggage (any HTTP client can set it). Off: only "
        "`llm_telemetry.attribute(...)` in this process attributes calls; baggage values are ignored and counted.",
    )
    baggage_keys: tuple[str, ...] = _setting(
        ATTRIBUTION_BAGGAGE_KEYS, _baggage_keys, "With trust_baggage: the baggage keys accepted (allow-list).",
    )
    baggage_max_chars: int = _setting(
        128, _integer(1),
        "With trust_baggage: longest accepted value; values must also be made of letters, digits and `._:@/+=-`.",
    )


@dataclass(frozen=True)
class StoreSettings:
    path: Path = _setting(
        Path("~/.local/state/llm-telemetry/telemetry.db").expanduser(), lambda raw: _optional_path(raw) or Path("telemetry.db"),
        "SQLite file of the embedded store (`llm_telemetry_store` exporters, the gateway without upstream, `llm-telemetry report`).",
    )
    retention_days: float = _setting(7.0, _number(minimum=0.0), "Rows older than this are deleted from the store (0: keep all).")


@dataclass(frozen=True)
class ReportSettings:
    thresholds: dict[str, float] = _setting_factory(
        lambda: {"*.ttft_p95": 3.0, "*.tbt_p99": 0.5, "*.error_rate": 0.05},
        _thresholds,
        "Per-endpoint latency/error thresholds for `llm-telemetry report`: `feature.metric=value,...` with metric one of "
        "ttft_p95, ttft_p99, tbt_p95, tbt_p99, duration_p95, error_rate; `*` is any feature.",
    )


@dataclass(frozen=True)
class EvalSettings:
    judge_model: str = _setting("gpt-4o-mini", _text, "Model the LLM-judge faithfulness check asks (golden-dataset evaluation).")
    judge_base_url: str = _setting("", _text, "Base URL of the faithfulness judge's OpenAI client (empty: the SDK's default).")
    judge_timeout_s: float = _setting(30.0, _number(minimum=0.1), "Deadline for one faithfulness-judge call.")
    export_explanations: bool = _setting(
        True, _bool,
        "Put check explanations (they quote a case's expected and actual output) on eval span events and canary alerts. "
        "Golden datasets are test data; turn off if yours hold production content.",
    )
    canary_state_dir: Path = _setting(
        Path("~/.local/state/llm-telemetry/canary").expanduser(), lambda raw: _optional_path(raw) or Path("."),
        "Directory of the canary state files (last good run per dataset and model) when --state is not given.",
    )


@dataclass(frozen=True)
class FeedbackSettings:
    max_tracked_calls: int = _setting(
        10_000, _integer(1), "Response ids remembered to tie feedback to its call (LRU); older ids are evicted and counted.",
    )
    max_categories: int = _setting(50, _integer(1), "Distinct feedback categories kept as metric values; others become `other`.")
    session_idle_timeout_s: float = _setting(
        1800.0, _number(minimum=1), "A session with no event for this long ends and counts as abandoned.",
    )
    max_tracked_sessions: int = _setting(
        100_000, _integer(1), "Open sessions held in memory; past it the longest-idle one ends as abandoned (reason `evicted`).",
    )


def _one_of(*choices: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = _text(raw).lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


@dataclass(frozen=True)
class QualitySettings:
    watch_enabled: bool = _setting(True, _bool, "Model-version watch: report a new response model, system_fingerprint or id shape.")
    watch_baseline_calls: int = _setting(
        50, _integer(0),
        "Calls per requested model that form the watch's baseline (0: no call-count limit); the baseline ends "
        "at this count or at watch_baseline_s, whichever comes first.",
    )
    watch_baseline_s: float = _setting(
        600.0, _number(minimum=0), "Seconds (call time) of baseline per requested model (0: no time limit).",
    )
    watch_max_values: int = _setting(
        32, _integer(2), "Cap on distinct values tracked per model and dimension (least recent evicted, counted).",
    )
    watch_max_models: int = _setting(
        1000, _integer(1), "Cap on requested models watched; calls for further models are counted, not watched.",
    )
    stats_enabled: bool = _setting(True, _bool, "Output statistics with sequential change detection per feature and requested model.")
    stats_warmup_calls: int = _setting(
        500, _integer(20), "Calls per feature and model that estimate each statistic's baseline before it is watched.",
    )
    stats_ert_calls: float = _setting(
        10000.0, _number(minimum=50),
        "Expected calls between false alarms, per statistic and (feature, model): sets every detector's threshold.",
    )
    stats_length_shift_sd: float = _setting(
        1.0, _number(minimum=0.1, maximum=5),
        "Shift of mean log output length, in baseline standard deviations, the length detectors are tuned to.",
    )
    stats_rate_odds_ratio: float = _setting(
        3.0, _number(minimum=1.2, maximum=100),
        "Rise in the odds of a rate (refusals, length cut-offs, ...) the rate detectors are tuned to.",
    )
    stats_json_features: tuple[str, ...] = _setting(
        (), _names,
        "Features whose outputs must be JSON (others: watched as JSON when >= 90 % of warm-up outputs looked like JSON).",
    )
    stats_refusals_file: Path | None = _setting(
        None, _optional_path, "TOML file adding refusal phrases ([[refusal]] phrase = ..., language = ...) to the bundled pack.",
    )
    stats_language_detector: str = _setting(
        "stopwords", _one_of("stopwords", "py3langid", "off"),
        "Output language detector: `stopwords` (built in, ~10 languages + scripts), `py3langid` (extra `langid`), `off`.",
    )
    stats_sample_chars: int = _setting(
        400, _integer(50), "Characters at the start of each output read for the refusal check (the language check reads up to 240).",
    )
    stats_max_keys: int = _setting(
        1000, _integer(1), "Cap on (feature, model) pairs tracked; calls for further pairs are counted, not tracked.",
    )


@dataclass(frozen=True)
class ValidatorsSettings:
    """Live output validators and their pass-rate drop detector (`llm_telemetry.processors.quality`)."""

    enabled: bool = _setting(True, _bool, "Run the live output validators on every GenAI output (content is read in-process only).")
    file: Path | None = _setting(
        None, _optional_path,
        "TOML/YAML validators file: per-feature/per-model content contracts (regex, JSON, JSON Schema, in-prompt, numbers, "
        "sums, length, callables, date consistency).",
    )
    date_consistency: bool = _setting(
        True, _bool,
        "Run the built-in date-consistency validator (input format inferred) on every feature, unless the validators file "
        "declares a date_consistency validator itself.",
    )
    baseline_checks: int = _setting(
        200, _integer(20), "Checks per (feature, validator) that estimate its normal pass rate before the drop detector arms.",
    )
    min_drop: float = _setting(
        0.1, _number(minimum=0.01, maximum=0.9),
        "Drop in pass rate (absolute, e.g. 0.1 = 10 points) the detector is tuned to catch fastest; smaller drops take longer.",
    )
    false_alarm_checks: int = _setting(
        1_000_000, _integer(100),
        "Expected checks between false alarms per (feature, validator) on a stable pass rate (the CUSUM's in-control ARL).",
    )
    max_keys: int = _setting(
        10_000, _integer(1), "Cap on (feature, validator) pairs the drop detector tracks (least recently seen evicted).",
    )


@dataclass(frozen=True)
class DriftSettings:
    enabled: bool = _setting(True, _bool, "Embedding drift per feature and model (MMD, on its own background lane).")
    embedder: str = _setting(
        "hashing", _text,
        "`hashing[:dims]` (offline, numpy), `wordllama[:dims]` (extra `wordllama`) or `provider:MODEL[:dims]` "
        "(the OpenAI embeddings API through the instrumented SDK).",
    )
    reference_size: int = _setting(500, _integer(10), "Known-good outputs per feature and model in the reference window.")
    window_size: int = _setting(50, _integer(2), "Outputs in the sliding test window.")
    ert: float = _setting(
        1000.0, _number(minimum=10),
        "Expected outputs between false alarms (per feature and model): the online detector's thresholds are calibrated to it.",
    )
    baseline_dir: Path | None = _setting(
        None, _optional_path, "Directory for reference windows: loaded at start if present, saved once learned from traffic.",
    )
    max_keys: int = _setting(
        32, _integer(1), "Cap on (feature, model) pairs watched (~1 MB each); the least recent is evicted and counted.",
    )


@dataclass(frozen=True)
class Settings:
    content: ContentSettings = field(default_factory=ContentSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    cost: CostSettings = field(default_factory=CostSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    attribution: AttributionSettings = field(default_factory=AttributionSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    validators: ValidatorsSettings = field(default_factory=ValidatorsSettings)


def env_var(section: str, key: str) -> str:
    if (section, key) == ("content", "capture"):
        return CAPTURE_CONTENT_ENV
    return f"{ENV_PREFIX}{section}_{key}".upper()


@dataclass(frozen=True)
class SettingInfo:
    section: str
    key: str
    env: str
    default: Any
    doc: str


def describe() -> list[SettingInfo]:
    """Every setting with its env var, default and doc (the README table is generated from this)."""
    out: list[SettingInfo] = []
    for section_field in fields(Settings):
        section_cls = section_field.default_factory  # type: ignore[misc]
        instance = section_cls()  # type: ignore[operator]
        for f in fields(instance):
            out.append(
                SettingInfo(section_field.name, f.name, env_var(section_field.name, f.name), getattr(instance, f.name), f.metadata["doc"])
            )
    return out


def _read_file(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE_ENV}={str(path)!r}: cannot read config file: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except Exception as exc:  # both parsers give a line in their message
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table of sections")
    return data, text


def _line_of(text: str, section: str, key: str) -> int | None:
    """Best-effort line number of ``key`` inside ``section`` of a TOML/YAML file."""
    in_section = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if re.match(rf"^\[\s*{re.escape(section)}\s*\]$", stripped) or re.match(rf"^{re.escape(section)}\s*:\s*$", stripped):
            in_section = True
            continue
        if stripped.startswith("[") or (line[:1].strip() and stripped.endswith(":") and not stripped.startswith("#")):
            in_section = False
        if in_section and re.match(rf"^{re.escape(key)}\s*[=:]", stripped):
            return number
    return None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from defaults, the config file and the environment; raise `ConfigError` on bad input."""
    return _load(environ, None)


def load_settings_leniently(environ: Mapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """Like `load_settings`, but a bad value falls back to its default and is reported instead of raised.

    Used where a telemetry typo must not cost the telemetry (let alone the app): the setting keeps its
    (safe) default, and each problem comes back as a message naming the setting, the value, where it came
    from and what happens until it is fixed.
    """
    problems: list[str] = []
    return _load(environ, problems), problems


def _load(environ: Mapping[str, str] | None, problems: list[str] | None) -> Settings:
    env = os.environ if environ is None else environ

    def fail(message: str, consequence: str) -> None:
        if problems is None:
            raise ConfigError(message)
        problems.append(f"{message}; {consequence}")

    file_values: dict[str, Any] = {}
    file_text = ""
    file_path: Path | None = None
    if env.get(CONFIG_FILE_ENV, "").strip():
        file_path = Path(env[CONFIG_FILE_ENV].strip()).expanduser()
        try:
            file_values, file_text = _read_file(file_path)
        except ConfigError as exc:
            fail(str(exc), "the file is ignored")

    known_sections = {f.name: f for f in fields(Settings)}
    for section_name, table in list(file_values.items()):
        if section_name not in known_sections:
            fail(f"{file_path}: unknown section [{section_name}] (known: {', '.join(known_sections)})", "it is ignored")
            del file_values[section_name]
        elif not isinstance(table, dict):
            fail(f"{file_path}: [{section_name}] must be a table of settings", "it is ignored")
            del file_values[section_name]

    sections: dict[str, Any] = {}
    for section_field in fields(Settings):
        section_cls = section_field.default_factory  # type: ignore[misc]
        defaults = section_cls()  # type: ignore[operator]
        section_fields = {f.name: f for f in fields(defaults)}
        table = file_values.get(section_field.name, {})
        for key in table:
            if key not in section_fields:
                line = _line_of(file_text, section_field.name, key)
                where = f"{file_path}, line {line}" if line else str(file_path)
                fail(f"{where}: unknown setting {section_field.name}.{key} (known: {', '.join(section_fields)})", "it is ignored")
        values: dict[str, Any] = {}
        for key, f in section_fields.items():
            parse = f.metadata["parse"]
            name = env_var(section_field.name, key)
            if name in env and env[name].strip() != "":
                raw, origin = env[name], f"environment variable {name}"
            elif key in table:
                line = _line_of(file_text, section_field.name, key)
                raw = table[key]
                origin = f"{file_path}, line {line}" if line else f"{file_path} [{section_field.name}] {key}"
            else:
                continue
            try:
                values[key] = parse(raw)
            except ValueError as exc:
                fail(f"{section_field.name}.{key} = {raw!r} ({origin}): {exc}",
                     f"using the default {getattr(defaults, key)!r} until this is fixed")
        sections[section_field.name] = section_cls(**values)  # type: ignore[operator]
    return Settings(**sections)


def origins(environ: Mapping[str, str] | None = None) -> dict[tuple[str, str], str]:
    """Where each setting that is not a default comes from: ``(section, key)`` → env var or ``file, line N``.

    Same precedence as `load_settings` (environment, then file); call it after `load_settings` succeeded.
    """
    env = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    file_text = ""
    file_path: Path | None = None
    if env.get(CONFIG_FILE_ENV, "").strip():
        file_path = Path(env[CONFIG_FILE_ENV].strip()).expanduser()
        file_values, file_text = _read_file(file_path)
    out: dict[tuple[str, str], str] = {}
    for info in describe():
        if info.env in env and env[info.env].strip() != "":
            out[(info.section, info.key)] = info.env
        elif info.key in (file_values.get(info.section) or {}):
            line = _line_of(file_text, info.section, info.key)
            out[(info.section, info.key)] = f"{file_path}, line {line}" if line else str(file_path)
    return out


_settings: Settings | None = None


def get_settings(*, lenient: bool = False) -> Settings:
    """The process-wide settings, loaded once (at instrumentor/configurator start-up).

    ``lenient`` (the instrumentors, whatever configurator ran): a bad value falls back to its default and
    is printed to stderr once, naming the variable — a telemetry typo must not cost the spans.
    """
    global _settings
    if _settings is None:
        if lenient:
            settings, problems = load_settings_leniently()
            for problem in problems:
                print(f"llm-telemetry: {problem}.", file=sys.stderr, flush=True)
            _settings = settings
        else:
            _settings = load_settings()
    return _settings


def set_settings(settings: Settings | None) -> None:
    """Replace (or with ``None`` reset) the process-wide settings; for tests and embedding apps."""
    global _settings
    _settings = settings
