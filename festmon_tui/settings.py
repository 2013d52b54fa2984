"""festmon's configuration: the original's environment variables plus MONITORING_* additions.

Settings come from command-line overrides, the environment and a dotenv file, in that order of
precedence, and are checked here with the standard library only. Every setting is a flat value
(integer, decimal, boolean, enum, text, path, DSN), and the dashboard validates them before its
first frame: pydantic and pydantic-settings cost ~130 ms of CPU to import and build a model, a
quarter of what the dashboard did before its first paint. The checks and their messages are
pydantic's lax-mode ones (tests/unit/test_settings.py holds the cases).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Gt:
    """The value must be greater than `gt`."""

    gt: int | Decimal


@dataclass(frozen=True)
class Ge:
    """The value must be greater than or equal to `ge`."""

    ge: int | Decimal


@dataclass(frozen=True)
class Le:
    """The value must be less than or equal to `le`."""

    le: int | Decimal


Bound = Gt | Ge | Le

# PostgreSQL's integer settings (statement_timeout, lock_timeout) and int4 columns stop at 2^31-1.
INT4_MAX = 2_147_483_647
PositiveMs = Annotated[int, Gt(0), Le(INT4_MAX)]
PositiveSeconds = Annotated[int, Gt(0), Le(INT4_MAX)]
# numeric(5,2) percentages and numeric(10,2) amounts: a value that would round to 0 is refused.
Percent = Annotated[Decimal, Ge(Decimal("0.01")), Le(100)]
Amount = Annotated[Decimal, Ge(Decimal("0.01")), Le(Decimal("99999999.99"))]


class Environment(StrEnum):
    """Deployment environment, as the original's ENVIRONMENT variable."""

    PRODUCTION = "production"
    DEVELOPMENT = "development"


class PoolerMode(StrEnum):
    """How festmon talks to a connection pooler in front of PostgreSQL."""

    AUTO = "auto"
    NONE = "none"
    TRANSACTION = "transaction"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""


class SecretStr:
    """A string that never shows itself in repr(), str() or a dump of the settings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SettingField:
    """What a setting holds: its type (`annotation`), bounds (`metadata`) and default."""

    annotation: Any
    metadata: tuple[Bound, ...]
    default: Any
    description: str | None = None


@dataclass(frozen=True)
class Settings:
    """Every setting festmon reads; field names are the environment variable names (any case).

    Build it with load_settings() (environment, dotenv file, overrides) or Settings.parse().
    """

    # The original's contract (same names, same units).
    database_url: SecretStr | None = None
    environment: Environment = Environment.DEVELOPMENT
    monitoring_interval_critical: PositiveMs = 30_000
    monitoring_interval_medium: PositiveMs = 120_000
    monitoring_interval_health: PositiveMs = 300_000
    monitoring_interval_cleanup: PositiveMs = 3_600_000
    monitoring_cleanup_retention_days: Annotated[int, Ge(1), Le(3650)] = 30
    monitoring_batch_size: Annotated[int, Ge(1), Le(1_000_000)] = 500
    monitoring_circuit_failure_threshold: Annotated[int, Ge(1), Le(1000)] = 5
    monitoring_circuit_recovery_timeout_ms: PositiveMs = 60_000
    monitoring_circuit_half_open_max_calls: Annotated[int, Ge(1), Le(1000)] = 2
    monitoring_circuit_timeout_ms: PositiveMs = 30_000

    # festmon's additions.
    monitoring_timezone: str = "Europe/Brussels"
    monitoring_theme: str = "festmon-dark"
    monitoring_operator: str | None = None
    monitoring_pooler_mode: PoolerMode = PoolerMode.AUTO
    monitoring_connect_timeout_ms: PositiveMs = 5_000
    monitoring_statement_timeout_ms: PositiveMs = 30_000
    monitoring_data_dir: Path | None = None
    # A hot standby (same forms as DATABASE_URL) for the dashboard's and the read API's queries;
    # detection, leadership and actions stay on DATABASE_URL (issue 18, docs/SCALING.md).
    monitoring_read_url: SecretStr | None = None
    monitoring_lease_ttl_ms: PositiveMs = 15_000
    monitoring_poll_interval_ms: PositiveMs = 2_000
    monitoring_alert_escalation_minutes: Annotated[int, Ge(1), Le(1_000_000)] = 15
    monitoring_bell: bool = False
    # More new events a minute than this from one rule: the dashboard folds them into one line.
    monitoring_storm_threshold_per_min: Annotated[int, Ge(1), Le(1_000_000)] = 200
    # Dashboard key remapping, "action=key,action=key" (actions listed by the help screen, `?`).
    monitoring_keymap: str = ""

    # The HTTP API (SPEC §12), on only with --http: bearer tokens as "name=token,name=token"
    # (the name is the actor of lifecycle actions), or a file of "read:name=token" /
    # "operator:name=token" lines; allowed CORS origins (comma-separated, none by default);
    # whether /metrics needs a token; per-minute limits, e.g. "health=60,data=100,cycles=10,
    # dashboard=30" (the default; a class set to 0 is not limited).
    monitoring_api_read_tokens: SecretStr | None = None
    monitoring_api_operator_tokens: SecretStr | None = None
    monitoring_api_token_file: Path | None = None
    monitoring_api_cors_origins: str = ""
    monitoring_api_metrics_token_required: bool = False
    monitoring_api_rate_limits: str = ""

    # Detection thresholds and windows (SPEC §6.1), written to the database settings row.
    monitoring_consecutive_failure_count: Annotated[int, Ge(2), Le(INT4_MAX)] = 3
    monitoring_consecutive_failure_window_s: PositiveSeconds = 600
    monitoring_spike_window_s: PositiveSeconds = 900
    monitoring_spike_min_transactions: Annotated[int, Ge(1), Le(INT4_MAX)] = 10
    monitoring_spike_rate_percent: Percent = Decimal("5.0")
    monitoring_spike_high_rate_percent: Percent = Decimal("10.0")
    monitoring_discrepancy_threshold: Amount = Decimal("0.01")
    monitoring_duplicate_nfc_window_ms: PositiveMs = 5_000
    monitoring_race_window_ms: PositiveMs = 2_000

    # Each field's type, bounds and default (the name pydantic gives this, which callers use).
    model_fields: ClassVar[dict[str, SettingField]]

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from raw values keyed by field name (strings as in the environment).

        Unknown names are ignored. Raises SettingsError naming the first invalid setting.
        """
        parsed: dict[str, Any] = {}
        errors: list[tuple[str, Any, str]] = []
        for name, field in cls.model_fields.items():
            if name not in values:
                continue
            raw = values[name]
            try:
                parsed[name] = _check(name, field, raw)
            except ValueError as exc:
                errors.append((name, raw, str(exc)))
        if errors:
            raise SettingsError(_describe(errors))
        return cls(**parsed)

    @property
    def dsn(self) -> str | None:
        """The DSN with its password; never print it, use `redacted_dsn`."""
        return None if self.database_url is None else self.database_url.get_secret_value()

    @property
    def read_dsn(self) -> str | None:
        """MONITORING_READ_URL with its password (a hot standby for reads), or None."""
        url = self.monitoring_read_url
        return None if url is None else url.get_secret_value()

    @property
    def redacted_dsn(self) -> str:
        """The DSN for display: the password replaced by ***."""
        return "embedded" if self.dsn is None else redact_dsn(self.dsn)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.monitoring_timezone)


def _setting_fields() -> dict[str, SettingField]:
    hints = get_type_hints(Settings, include_extras=True)
    found = {}
    for field in fields(Settings):
        hint = hints[field.name]
        metadata: tuple[Bound, ...] = ()
        if get_origin(hint) is Annotated:
            hint, *bounds = get_args(hint)
            metadata = tuple(bounds)
        found[field.name] = SettingField(hint, metadata, field.default)
    return found


Settings.model_fields = _setting_fields()


# ---- checking one value (pydantic's lax-mode rules and messages) ----------------------------

_INT_TEXT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _check(name: str, field: SettingField, raw: Any) -> Any:
    """The value `raw` gives this setting; ValueError with pydantic's message if none."""
    kind = field.annotation
    if name in ("database_url", "monitoring_read_url"):
        return _postgres_dsn(raw)
    if raw is None and type(None) in get_args(kind):
        return None
    if name == "monitoring_timezone":
        return _known_timezone(_text(raw))
    checker = _CHECKERS.get(kind)
    if checker is not None:
        value = checker(raw)
    elif isinstance(kind, type) and issubclass(kind, Enum):
        value = _member(kind, raw)
    elif kind == Path | None:
        value = _path(raw)
    elif kind == str | None:
        value = _text(raw)
    elif kind == SecretStr | None:
        value = raw if isinstance(raw, SecretStr) else SecretStr(_text(raw))
    else:  # a new kind of setting needs its check here
        raise TypeError(f"no check for {name}: {kind!r}")
    for bound in field.metadata:
        _within(value, bound)
    return value


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("Input should be a valid string")
    return raw


def _path(raw: Any) -> Path:
    if isinstance(raw, Path | str):
        return Path(raw)
    raise ValueError("Input is not a valid path for <class 'pathlib.Path'>")


def _integer(raw: Any) -> int:
    if isinstance(raw, bool | int):
        return int(raw)
    if isinstance(raw, float | Decimal):
        if not (raw == raw and abs(raw) != float("inf")):
            raise ValueError("Input should be a finite number")
        if raw != int(raw):
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.isascii() and _INT_TEXT.fullmatch(text):
            return int(text.partition(".")[0])
        raise ValueError("Input should be a valid integer, unable to parse string as an integer")
    raise ValueError("Input should be a valid integer")


def _decimal(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, Decimal | int | float | str):
        raise ValueError("Decimal input should be an integer, float, string or Decimal object")
    try:
        value = Decimal(
            str(raw) if isinstance(raw, float) else raw.strip() if isinstance(raw, str) else raw
        )
    except InvalidOperation:
        raise ValueError("Input should be a valid decimal") from None
    if not value.is_finite():
        raise ValueError("Input should be a finite number")
    return value


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if not isinstance(raw, str | int | float):
        raise ValueError("Input should be a valid boolean")
    if isinstance(raw, str) and raw.lower() in _TRUE:
        return True
    if isinstance(raw, str) and raw.lower() in _FALSE:
        return False
    raise ValueError("Input should be a valid boolean, unable to interpret input")


_CHECKERS: dict[Any, Callable[[Any], Any]] = {
    int: _integer,
    Decimal: _decimal,
    bool: _boolean,
    str: _text,
}


def _member(enum: type[Enum], raw: Any) -> Enum:
    for member in enum:
        if raw is member or raw == member.value:
            return member
    names = [repr(member.value) for member in enum]
    raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}")


def _within(value: Any, bound: Bound) -> None:
    if isinstance(bound, Gt) and not value > bound.gt:
        raise ValueError(f"Input should be greater than {bound.gt}")
    if isinstance(bound, Ge) and not value >= bound.ge:
        raise ValueError(f"Input should be greater than or equal to {bound.ge}")
    if isinstance(bound, Le) and not value <= bound.le:
        raise ValueError(f"Input should be less than or equal to {bound.le}")


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def _postgres_dsn(raw: Any) -> SecretStr | None:
    value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
    if value is None or not _text(value).strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("must be a postgresql:// URL")
    _check_ports(parts.netloc.rpartition("@")[2])
    return SecretStr(value)


def _check_ports(hosts: str) -> None:
    """Each host of a (multi-host) URL netloc has no port or a port 1-65535."""
    for host in hosts.split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if ":" not in port:
            continue
        number = port.rpartition(":")[2]
        if number and not (number.isdigit() and 1 <= int(number) <= 65535):
            raise ValueError(f"port {number[:20]!r} is not a number from 1 to 65535")


def _describe(errors: list[tuple[str, Any, str]]) -> str:
    """One line naming the first offending setting, without echoing secrets."""
    field, value, message = errors[0]
    name = field_env_name(field)
    secret = field in ("database_url", "monitoring_read_url") or field.endswith("_tokens")
    shown = "" if secret or value is None else f"={str(value)[:60]!r}"
    count = len(errors)
    more = f" (and {count - 1} more invalid setting{'s' if count > 2 else ''})" if count > 1 else ""
    return f"invalid setting {name}{shown}: {message}{more}"


def redact_dsn(dsn: str) -> str:
    """Replace the password of a PostgreSQL URL (and any password= parameter) by ***."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable DSN>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostinfo}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def field_env_name(field: str) -> str:
    """The environment variable that sets a field."""
    return field.upper()


def field_option_name(field: str) -> str:
    """The command-line option that sets a field, e.g. --monitoring-interval-critical."""
    return "--" + field.replace("_", "-")


def load_settings(
    overrides: dict[str, Any] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Build Settings from command-line overrides, the environment and the dotenv file.

    Each setting comes from the first of these that has it: overrides (keyed by field name),
    the environment, then `env_file` (skipped if None or not a file); variable names are
    matched without regard to case. Raises SettingsError with one line naming the offending
    variable.
    """
    values: dict[str, Any] = _named_fields(_read_env_file(env_file) if env_file else {})
    values.update(_named_fields(os.environ))
    values.update(overrides or {})
    return Settings.parse(values)


def _named_fields(variables: Mapping[str, str | None]) -> dict[str, str]:
    """The variables that name a setting (any case), keyed by its field name; unset skipped."""
    known = Settings.model_fields
    found: dict[str, str] = {}
    for name, value in variables.items():
        field = name.lower()
        if field in known and value is not None:
            found[field] = value
    return found


def _read_env_file(env_file: str) -> dict[str, str | None]:
    """The variables of a dotenv file; {} if there is no such file (or it is empty)."""
    path = Path(env_file).expanduser()
    if not (path.is_file() or path.is_fifo()):
        return {}
    if path.is_file() and path.stat().st_size == 0:
        return {}
    from dotenv import dotenv_values  # only when there is a file to read

    return dict(dotenv_values(path, encoding="utf-8"))
