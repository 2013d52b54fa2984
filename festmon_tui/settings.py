"""festmon's configuration: the original's environment variables plus MONITORING_* additions."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""


class Settings(BaseSettings):
    """Every setting festmon reads; field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # The original's contract (same names, same units).
    database_url: SecretStr | None = None
    environment: Environment = Environment.DEVELOPMENT
    monitoring_interval_critical: PositiveMs = 30_000
    monitoring_interval_medium: PositiveMs = 120_000
    monitoring_interval_health: PositiveMs = 300_000
    monitoring_interval_cleanup: PositiveMs = 3_600_000
    monitoring_cleanup_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    monitoring_batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    monitoring_circuit_failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 5
    monitoring_circuit_recovery_timeout_ms: PositiveMs = 60_000
    monitoring_circuit_half_open_max_calls: Annotated[int, Field(ge=1, le=1000)] = 2
    monitoring_circuit_timeout_ms: PositiveMs = 30_000

    # festmon's additions.
    monitoring_timezone: str = "Europe/Brussels"
    monitoring_theme: str = "festmon-dark"
    monitoring_operator: str | None = None
    monitoring_pooler_mode: PoolerMode = PoolerMode.AUTO
    monitoring_connect_timeout_ms: PositiveMs = 5_000
    monitoring_statement_timeout_ms: PositiveMs = 30_000
    monitoring_data_dir: Path | None = None
    monitoring_lease_ttl_ms: PositiveMs = 15_000
    monitoring_poll_interval_ms: PositiveMs = 2_000
    monitoring_alert_escalation_minutes: Annotated[int, Field(ge=1, le=1_000_000)] = 15
    monitoring_bell: bool = False
    # Dashboard key remapping, "action=key,action=key" (actions listed by the help screen, `?`).
    monitoring_keymap: str = ""

    # Detection thresholds and windows (SPEC §6.1), written to the database settings row.
    monitoring_consecutive_failure_count: Annotated[int, Field(ge=2, le=INT4_MAX)] = 3
    monitoring_consecutive_failure_window_s: PositiveSeconds = 600
    monitoring_spike_window_s: PositiveSeconds = 900
    monitoring_spike_min_transactions: Annotated[int, Field(ge=1, le=INT4_MAX)] = 10
    monitoring_spike_rate_percent: Percent = Decimal("5.0")
    monitoring_spike_high_rate_percent: Percent = Decimal("10.0")
    monitoring_discrepancy_threshold: Amount = Decimal("0.01")
    monitoring_duplicate_nfc_window_ms: PositiveMs = 5_000
    monitoring_race_window_ms: PositiveMs = 2_000

    @field_validator("monitoring_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a postgresql:// URL")
        _check_ports(parts.netloc.rpartition("@")[2])
        return value

    @property
    def dsn(self) -> str | None:
        """The DSN with its password; never print it, use `redacted_dsn`."""
        return None if self.database_url is None else self.database_url.get_secret_value()

    @property
    def redacted_dsn(self) -> str:
        """The DSN for display: the password replaced by ***."""
        return "embedded" if self.dsn is None else redact_dsn(self.dsn)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.monitoring_timezone)


def _check_ports(hosts: str) -> None:
    """Each host of a (multi-host) URL netloc has no port or a port 1-65535."""
    for host in hosts.split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if ":" not in port:
            continue
        number = port.rpartition(":")[2]
        if number and not (number.isdigit() and 1 <= int(number) <= 65535):
            raise ValueError(f"port {number[:20]!r} is not a number from 1 to 65535")


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
    """Build Settings from the environment, .env and command-line overrides.

    Raises SettingsError with one line naming the offending variable.
    """
    try:
        return Settings(_env_file=env_file, **(overrides or {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first offending setting, without echoing secrets."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    name = field_env_name(field)
    message = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if field == "database_url" or value is None else f"={str(value)[:60]!r}"
    count = len(exc.errors())
    more = f" (and {count - 1} more invalid setting{'s' if count > 2 else ''})" if count > 1 else ""
    return f"invalid setting {name}{shown}: {message}{more}"
