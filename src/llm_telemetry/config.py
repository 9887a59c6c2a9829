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
        "After a failed export, exports are skipped (and counted as dropped) for this long instead of retried.",
    )


@dataclass(frozen=True)
class PipelineSettings:
    enrichers: tuple[str, ...] = _setting(
        ("cost", "budget", "safety"), _names,
        "Ordered enricher names (entry-point group llm_telemetry_enrichers).",
    )
    worker_queue_size: int = _setting(1000, _integer(1), "Bound of the background worker queue; overflow is dropped and counted.")
    side_channel_capacity: int = _setting(4096, _integer(16), "Max records waiting in the in-process side channel.")


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
    env = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    file_text = ""
    file_path: Path | None = None
    if env.get(CONFIG_FILE_ENV, "").strip():
        file_path = Path(env[CONFIG_FILE_ENV].strip()).expanduser()
        file_values, file_text = _read_file(file_path)

    known_sections = {f.name: f for f in fields(Settings)}
    for section_name, table in file_values.items():
        if section_name not in known_sections:
            raise ConfigError(f"{file_path}: unknown section [{section_name}] (known: {', '.join(known_sections)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{file_path}: [{section_name}] must be a table of settings")

    sections: dict[str, Any] = {}
    for section_field in fields(Settings):
        section_cls = section_field.default_factory  # type: ignore[misc]
        section_fields = {f.name: f for f in fields(section_cls())}  # type: ignore[operator]
        table = file_values.get(section_field.name, {})
        for key in table:
            if key not in section_fields:
                line = _line_of(file_text, section_field.name, key)
                where = f"{file_path}, line {line}" if line else str(file_path)
                raise ConfigError(f"{where}: unknown setting {section_field.name}.{key} (known: {', '.join(section_fields)})")
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
                raise ConfigError(f"{section_field.name}.{key} = {raw!r} ({origin}): {exc}") from None
        sections[section_field.name] = section_cls(**values)  # type: ignore[operator]
    return Settings(**sections)


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded once (at instrumentor/configurator start-up)."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def set_settings(settings: Settings | None) -> None:
    """Replace (or with ``None`` reset) the process-wide settings; for tests and embedding apps."""
    global _settings
    _settings = settings
