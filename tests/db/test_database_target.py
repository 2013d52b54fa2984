"""Which database (issue 15.3): DATABASE_URL, else libpq's PG* variables, else the embedded
server, never under ENVIRONMENT=production. PG* variables against the test PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONITORING_", "DATABASE_", "PG")) and k != "ENVIRONMENT"
    }
    return {**env, "PYTHONPATH": str(REPO), **extra}


async def festmon(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "festmon_tui", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _libpq(dsn: str) -> dict[str, str]:
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    variables = {
        "PGHOST": query["host"][0] if "host" in query else parts.hostname or "",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "",
        "PGDATABASE": parts.path.lstrip("/"),
    }
    if parts.password:
        variables["PGPASSWORD"] = parts.password
    return variables


async def test_libpq_variables_name_the_database_when_database_url_is_unset(
    db_dsn: str, tmp_path: Path
) -> None:
    env = _clean_env(**_libpq(db_dsn))
    result = await festmon("db", "status", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["pending"] == [] and document["applied"]
    database = _libpq(db_dsn)["PGDATABASE"]
    assert (
        document["database"].startswith("libpq environment (") and database in document["database"]
    )
    assert "embedded" not in result.stderr
    # The database really is PGDATABASE's: another name is refused by the server.
    env["PGDATABASE"] = "no_such_database_here"
    missing = await festmon("db", "status", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "festmon: status failed: the database named in libpq environment (PG*) does not exist"
    ]
    assert "Traceback" not in missing.stderr


async def test_pgservice_names_a_service_of_the_service_file(db_dsn: str, tmp_path: Path) -> None:
    variables = _libpq(db_dsn)
    service_file = tmp_path / "pg_service.conf"
    lines = ["[festival]"] + [
        f"{key}={variables[var]}"
        for key, var in (
            ("host", "PGHOST"),
            ("port", "PGPORT"),
            ("user", "PGUSER"),
            ("dbname", "PGDATABASE"),
        )
    ]
    if "PGPASSWORD" in variables:
        lines.append(f"password={variables['PGPASSWORD']}")
    service_file.write_text("\n".join(lines) + "\n")
    env = _clean_env(PGSERVICE="festival", PGSERVICEFILE=str(service_file))
    result = await festmon("db", "status", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["database"] == "libpq environment (PGSERVICE=festival)"


async def test_database_url_wins_over_libpq_variables(db_dsn: str, tmp_path: Path) -> None:
    env = _clean_env(
        **{**_libpq(db_dsn), "PGDATABASE": "no_such_database_here"}, DATABASE_URL=db_dsn
    )
    result = await festmon("db", "status", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert not json.loads(result.stdout)["database"].startswith("libpq")


@pytest.mark.parametrize(("command", "code"), [("status", 2), ("db status", 2), ("health", 3)])
async def test_production_without_a_database_is_one_line_and_no_embedded_server(
    command: str, code: int, tmp_path: Path
) -> None:
    env = _clean_env(ENVIRONMENT="production", HOME=str(tmp_path))
    result = await festmon(*command.split(), cwd=tmp_path, env=env)
    assert result.returncode == code
    assert result.stderr.splitlines() == [
        "festmon: no database: set DATABASE_URL (or libpq's PGHOST/PGSERVICE...); "
        "ENVIRONMENT=production never uses the embedded server"
    ]
    assert not (tmp_path / ".local").exists()  # no embedded server's data dir was made
