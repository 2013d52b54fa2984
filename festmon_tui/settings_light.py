"""What the command line and the dashboard's first frame need from the configuration, quickly.

Importing pydantic and building the settings model costs ~130 ms of CPU, a third of what the
dashboard does before its first paint; so the parts needed before that frame live here, with
the standard library (and python-dotenv, only when a file exists): the option names and help of
every setting (generated from the model's field docstrings into festmon_tui/_settings_help.py),
where each source of settings is, and the raw value of a few settings. festmon_tui.settings
validates everything with pydantic-settings, from the same sources, in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

# Sources of settings, lowest to highest precedence (SPEC §4): these files, then ./.env (or
# --env-file), the environment, the command-line options.
SYSTEM_ENV_FILE = Path("/etc/festmon/festmon.env")
USER_ENV_NAME = "festmon.env"
DEFAULT_ENV_FILE = ".env"

# libpq's variables that name a database when DATABASE_URL is not set (SPEC §3, "Which database").
LIBPQ_VARIABLES = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
)


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable (`field`, if one)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def user_env_file() -> Path:
    """The user's festmon.env: platformdirs' user config dir (~/.config/festmon on Linux)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("festmon")) / USER_ENV_NAME


def env_files(env_file: str | None) -> list[tuple[str, Path]]:
    """The dotenv files to read, lowest precedence first, each with its source name.

    `env_file` None reads none of them (tests, and callers that give every value). A missing
    default ./.env, system or user file is skipped; a missing --env-file is the caller's error.
    """
    if env_file is None:
        return []
    return [
        ("system file", SYSTEM_ENV_FILE),
        ("user file", user_env_file()),
        ("env file", Path(env_file).expanduser()),
    ]


def readable(path: Path) -> bool:
    """A file that can be an env file: a regular file, or /dev/null (no settings)."""
    return path.is_file() or path.is_char_device()


def read_env_file(path: Path) -> dict[str, str | None]:
    """The variables of a dotenv file; {} if there is no such file (or it is empty)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    from dotenv import dotenv_values  # only when there is a file to read

    return dict(dotenv_values(path, encoding="utf-8"))


@dataclass(frozen=True)
class RawValue:
    """A setting's text as found, and where: 'option', 'environment', a file's source name."""

    value: str
    source: str
    path: Path | None = None


def raw_values(
    fields: Sequence[str],
    overrides: Mapping[str, str] | None,
    env_file: str | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, RawValue]:
    """For each of `fields` that some source sets, its raw text and source (highest wins)."""
    wanted = set(fields)
    found: dict[str, RawValue] = {}
    for source, path in env_files(env_file):
        for name, value in read_env_file(path).items():
            if name.lower() in wanted and value is not None:
                found[name.lower()] = RawValue(value, source, path)
    for name, value in (os.environ if environ is None else environ).items():
        if name.lower() in wanted:
            found[name.lower()] = RawValue(value, "environment")
    for name, value in (overrides or {}).items():
        if name in wanted:
            found[name] = RawValue(value, "option")
    return found


def field_env_name(field: str) -> str:
    """The environment variable that sets a field."""
    return field.upper()


def field_option_name(field: str) -> str:
    """The command-line option that sets a field, e.g. --monitoring-interval-critical."""
    return "--" + field.replace("_", "-")


def redact_dsn(dsn: str) -> str:
    """Replace the password of a PostgreSQL URL (and any password= parameter) by ***."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable DSN>"
    if not parts.netloc and not parts.path and parts.scheme in ("postgres", "postgresql"):
        # libpq_choice()'s URL: everything comes from the PG* variables (or a service).
        service = parse_qs(parts.query).get("service")
        return "libpq environment" + (f" (PGSERVICE={service[0]})" if service else " (PG*)")
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


@dataclass(frozen=True)
class DatabaseChoice:
    """Which database a command uses: `kind` is 'url', 'libpq' or 'embedded'.

    `dsn` is what asyncpg is given (None for the embedded server, which makes its own): for
    libpq's environment an empty URL, so that asyncpg fills host, port, user, database, password
    and passfile from PG* (and the service from PGSERVICE, passed as ?service=, as asyncpg reads
    service files only for a DSN's parameter). `label` is safe to show.
    """

    kind: str
    dsn: str | None
    label: str


def libpq_choice(environ: Mapping[str, str] | None = None) -> DatabaseChoice | None:
    """The database libpq's environment names, or None when none of its variables is set."""
    env = os.environ if environ is None else environ
    present = [name for name in LIBPQ_VARIABLES if env.get(name)]
    if not present:
        return None
    service = env.get("PGSERVICE")
    dsn = "postgresql://" + (f"?service={quote(service, safe='')}" if service else "")
    shown = ", ".join(
        f"{name}={env[name]}" for name in present if name not in ("PGPASSWORD", "PGPASSFILE")
    )
    return DatabaseChoice("libpq", dsn, f"libpq environment ({shown or 'PGPASSWORD'})")
