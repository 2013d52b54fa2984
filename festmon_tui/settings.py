"""festmon's configuration (SPEC §4): the original's environment variables plus MONITORING_*.

A pydantic-settings model. Sources, lowest to highest precedence: /etc/festmon/festmon.env, the
user's config directory (festmon.env), ./.env (or --env-file), the environment, command-line
options. Every field's description (meaning and unit) is its --help text and README line; the
option names and help are also generated into festmon_tui/_settings_help.py, which the command
line reads without importing pydantic (`python -m festmon_tui.settings` rewrites it; a test
checks it is current), and festmon_tui.settings_light reads the few raw values the dashboard's
first frame needs. The dashboard builds this model right after its first frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from festmon_tui.settings_light import (
    DatabaseChoice,
    SettingsError,
    env_files,
    field_env_name,
    field_option_name,
    libpq_choice,
    redact_dsn,
)

__all__ = [
    "INT4_MAX",
    "DatabaseChoice",
    "Environment",
    "PoolerMode",
    "SecretStr",
    "Settings",
    "SettingsError",
    "field_env_name",
    "field_option_name",
    "load_settings",
    "redact_dsn",
]

# PostgreSQL's integer settings (statement_timeout, lock_timeout) and int4 columns stop at 2^31-1.
INT4_MAX = 2_147_483_647
PositiveMs = Annotated[int, Field(gt=0, le=INT4_MAX)]
PositiveSeconds = Annotated[int, Field(gt=0, le=INT4_MAX)]
# numeric(5,2) percentages and numeric(10,2) amounts: a value that would round to 0 is refused.
Percent = Annotated[Decimal, Field(ge=Decimal("0.01"), le=100)]
Amount = Annotated[Decimal, Field(ge=Decimal("0.01"), le=Decimal("99999999.99"))]


class Environment(StrEnum):
    """Deployment environment, as the original's ENVIRONMENT variable."""

    PRODUCTION = "production"
    DEVELOPMENT = "development"


class PoolerMode(StrEnum):
    """How festmon talks to a connection pooler in front of PostgreSQL."""

    AUTO = "auto"
    NONE = "none"
    TRANSACTION = "transaction"


class Settings(BaseSettings):
    """Every setting festmon reads; field names are the environment variable names (any case).

    Build it with load_settings() (files, environment, options) or Settings.parse() (values).
    """

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        env_file_encoding="utf-8",
        validate_default=False,
        # Each field's description is the docstring under it (its --help text and README line).
        use_attribute_docstrings=True,
    )

    # The original's contract (same names, same units).
    database_url: SecretStr | None = None
    """PostgreSQL URL (postgresql://user:password@host:port/db); unset: libpq's PG* variables, else
    the embedded server (never under ENVIRONMENT=production)"""
    environment: Environment = Environment.DEVELOPMENT
    """deployment environment; production refuses the embedded server"""
    monitoring_interval_critical: PositiveMs = 30_000
    """critical detection job period, ms (races, duplicates, failures)"""
    monitoring_interval_medium: PositiveMs = 120_000
    """medium detection job period, ms (balance sweep, spikes)"""
    monitoring_interval_health: PositiveMs = 300_000
    """health snapshot job period, ms"""
    monitoring_interval_cleanup: PositiveMs = 3_600_000
    """cleanup job period, ms"""
    monitoring_cleanup_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """resolved events and snapshots are kept this long, days"""
    monitoring_batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    """rows a detection job reads per batch"""
    monitoring_circuit_failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 5
    """consecutive job failures that open a job's circuit breaker"""
    monitoring_circuit_recovery_timeout_ms: PositiveMs = 60_000
    """an open breaker tries again after this long, ms"""
    monitoring_circuit_half_open_max_calls: Annotated[int, Field(ge=1, le=1000)] = 2
    """trial runs a half-open breaker allows"""
    monitoring_circuit_timeout_ms: PositiveMs = 30_000
    """a job run taking longer counts as a failure, ms"""

    # festmon's additions.
    monitoring_timezone: str = "Europe/Brussels"
    """IANA time zone for displayed times"""
    monitoring_theme: str = "festmon-dark"
    """dashboard theme: festmon-dark, festmon-light, festmon-high-contrast, or one of Textual's"""
    monitoring_operator: str | None = None
    """operator name recorded with lifecycle actions (default: login user)"""
    monitoring_pooler_mode: PoolerMode = PoolerMode.AUTO
    """connection pooler in front of PostgreSQL: auto (detect), none, transaction"""
    monitoring_connect_timeout_ms: PositiveMs = 5_000
    """connecting to the database gives up after this long, ms"""
    monitoring_statement_timeout_ms: PositiveMs = 30_000
    """server-side statement_timeout of festmon's queries, ms"""
    monitoring_data_dir: Path | None = None
    """embedded server's data directory (default: the user data dir)"""
    monitoring_lease_ttl_ms: PositiveMs = 15_000
    """scheduler leader lease lifetime, ms"""
    monitoring_poll_interval_ms: PositiveMs = 2_000
    """change polling period where LISTEN is unavailable, ms"""
    monitoring_alert_escalation_minutes: Annotated[int, Field(ge=1, le=1_000_000)] = 15
    """an unacknowledged critical event escalates after this long, minutes"""
    monitoring_bell: bool = False
    """ring the terminal bell on a new critical event"""
    monitoring_keymap: str = ""
    """dashboard key remapping, action=key,action=key (actions: see `?`)"""
    monitoring_storm_threshold_per_min: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """more new events a minute than this from one rule fold into one storm line on the dashboard
    (nothing is dropped), events/min"""
    monitoring_csv_safe: bool = False
    """CSV output (festmon events --format csv, the dashboard's export) for spreadsheets: formulas
    start with ' and control characters are shown escaped"""

    # Detection thresholds and windows (SPEC §6.1), written to the database settings row.
    monitoring_consecutive_failure_count: Annotated[int, Field(ge=2, le=INT4_MAX)] = 3
    """failed transactions in a row on one card that raise an event"""
    monitoring_consecutive_failure_window_s: PositiveSeconds = 600
    """window of the consecutive failures, s"""
    monitoring_spike_window_s: PositiveSeconds = 900
    """window of the failure-rate spike rule, s"""
    monitoring_spike_min_transactions: Annotated[int, Field(ge=1, le=INT4_MAX)] = 10
    """transactions a window needs before its failure rate counts"""
    monitoring_spike_rate_percent: Percent = Decimal("5.0")
    """failure rate that raises a spike event, %"""
    monitoring_spike_high_rate_percent: Percent = Decimal("10.0")
    """failure rate that makes a spike event high severity, %"""
    monitoring_discrepancy_threshold: Amount = Decimal("0.01")
    """balance difference that raises a discrepancy event, EUR"""
    monitoring_duplicate_nfc_window_ms: PositiveMs = 5_000
    """two scans of one NFC tag closer than this are duplicates, ms"""
    monitoring_race_window_ms: PositiveMs = 2_000
    """two payments of one card closer than this are a race, ms"""

    # HTTP API (SPEC §12) and the read replica (§7).
    monitoring_api_read_tokens: SecretStr | None = None
    """HTTP API read tokens, comma-separated name=token"""
    monitoring_api_operator_tokens: SecretStr | None = None
    """HTTP API operator tokens (lifecycle actions), comma-separated name=token"""
    monitoring_api_token_file: Path | None = None
    """file of HTTP API tokens, one read:name=token or operator:name=token per line"""
    monitoring_api_cors_origins: str = ""
    """origins allowed to call the HTTP API from a browser, comma-separated"""
    monitoring_api_metrics_token_required: bool = False
    """/metrics needs a read token too"""
    monitoring_api_rate_limits: str = ""
    """HTTP API per-token limits a minute, e.g. health=60,data=100,cycles=10,dashboard=30 (those are
    the defaults; 0 = unlimited)"""
    monitoring_read_url: SecretStr | None = None
    """hot-standby PostgreSQL URL for the dashboard's and API's reads (same forms as DATABASE_URL)
    """

    # Options (init), environment, dotenv files (later files win); no secrets directory.
    _SOURCES: ClassVar[tuple[str, ...]] = ("init", "env", "dotenv")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = {"init": init_settings, "env": env_settings, "dotenv": dotenv_settings}
        return tuple(sources[name] for name in cls._SOURCES)

    @field_validator("database_url", "monitoring_read_url", mode="before")
    @classmethod
    def _postgres_dsn(cls, raw: Any) -> Any:
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a postgresql:// URL")
        if not value.strip():
            return None
        try:
            parts = urlsplit(value.strip())
        except ValueError:
            raise ValueError("must be a postgresql:// URL") from None
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a postgresql:// URL")
        _check_ports(parts.netloc.rpartition("@")[2])
        return value

    @field_validator("monitoring_api_read_tokens", "monitoring_api_operator_tokens", mode="before")
    @classmethod
    def _named_tokens(cls, raw: Any) -> Any:
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("must be comma-separated name=token pairs")
        for item in value.strip().strip(",").split(","):  # a trailing comma is no pair
            name, equals, token = item.strip().partition("=")
            if not (name.strip() and equals and token.strip()):
                raise ValueError("must be comma-separated name=token pairs (a token is hidden)")
        return value

    @field_validator("monitoring_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from these values only, keyed by field name (strings as in the environment).

        Unknown names are ignored. Raises SettingsError naming the first invalid setting.
        """
        known = {name: value for name, value in values.items() if name in cls.model_fields}
        try:
            given = _GivenValuesOnly(**known)
        except ValidationError as exc:
            raise SettingsError(_describe(exc), _first_field(exc)) from None
        return Settings.model_construct(_fields_set=given.model_fields_set, **dict(given))

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

    def database(self, environ: Mapping[str, str] | None = None) -> DatabaseChoice:
        """Which database to use: DATABASE_URL, else libpq's PG* environment, else embedded.

        Raises SettingsError under ENVIRONMENT=production when neither names a database.
        """
        if self.dsn is not None:
            return DatabaseChoice("url", self.dsn, redact_dsn(self.dsn))
        libpq = libpq_choice(environ)
        if libpq is not None:
            return libpq
        if self.environment is Environment.PRODUCTION:
            raise SettingsError(
                "no database: set DATABASE_URL (or libpq's PGHOST/PGSERVICE...); "
                "ENVIRONMENT=production never uses the embedded server"
            )
        return DatabaseChoice("embedded", None, "embedded")


class _GivenValuesOnly(Settings):
    """Settings validated from init values alone (Settings.parse): no environment, no file."""

    _SOURCES = ("init",)


def _check_ports(hosts: str) -> None:
    """Each host of a (multi-host) URL netloc has no port or a port 1-65535."""
    for host in hosts.split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if ":" not in port:
            continue
        number = port.rpartition(":")[2]
        if number and not (number.isdigit() and 1 <= int(number) <= 65535):
            raise ValueError(f"port {number[:20]!r} is not a number from 1 to 65535")


_SECRET_FIELDS = frozenset(
    name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
)


def is_secret(field: str) -> bool:
    return field in _SECRET_FIELDS


def _first_field(exc: ValidationError) -> str | None:
    loc = exc.errors(include_url=False)[0]["loc"]
    return str(loc[0]) if loc else None


def _describe(exc: ValidationError) -> str:
    """One line naming the first offending setting, without echoing secrets."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    value = first.get("input")
    message = first["msg"].removeprefix("Value error, ")
    shown = "" if is_secret(field) or not isinstance(value, str | int) else f"={str(value)[:60]!r}"
    count = len(errors)
    more = f" (and {count - 1} more invalid setting{'s' if count > 2 else ''})" if count > 1 else ""
    return f"invalid setting {field_env_name(field)}{shown}: {message}{more}"


def load_settings(
    overrides: Mapping[str, Any] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Settings from the files, the environment and `overrides` (command-line options).

    Each setting comes from the highest of: `overrides` (keyed by field name), the environment,
    `env_file`, the user's festmon.env, /etc/festmon/festmon.env (settings_light.env_files);
    `env_file` None reads no file at all. Variable names are matched without regard to case.
    Raises SettingsError with one line naming the offending variable.
    """
    files = tuple(path for _, path in env_files(env_file) if path.is_file())
    try:
        return Settings(_env_file=files or None, **dict(overrides or {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_describe(exc), _first_field(exc)) from None


def _help_module() -> str:
    """festmon_tui/_settings_help.py's text: each setting's option help, from the model."""
    lines = [
        "# ruff: noqa: E501",
        '"""Generated by `python -m festmon_tui.settings` from festmon_tui/settings.py: every',
        'setting\'s --help text, for a command line that does not import pydantic. Do not edit."""',
        "",
        "HELP: tuple[tuple[str, str], ...] = (",
    ]
    for name in Settings.model_fields:
        lines.append(f"    ({name!r}, {option_help(name)!r}),")
    lines.append(")")
    return "\n".join(lines) + "\n"


def option_help(name: str) -> str:
    """A setting's meaning and unit (its description) and its default."""
    info = Settings.model_fields[name]
    default = info.default
    shown = "unset" if default is None or default == "" else str(default)
    meaning = " ".join((info.description or "").split())  # a docstring may wrap its lines
    return f"{meaning} (default: {shown})"


if __name__ == "__main__":
    target = Path(__file__).with_name("_settings_help.py")
    target.write_text(_help_module(), encoding="utf-8")
    print(f"wrote {target}")
