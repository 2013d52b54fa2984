"""Where settings come from (issue 15.2): system file < user file < .env/--env-file <
environment < options, and `festmon config` saying which one each setting came from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from festmon_tui import settings_light
from festmon_tui.cli import main
from festmon_tui.settings import load_settings

# One setting per level: each level sets it and every setting of the levels below it.
LEVELS = ("system file", "user file", "env file", "environment", "option")
FIELDS = {
    "monitoring_batch_size": 0,
    "monitoring_interval_health": 1,
    "monitoring_lease_ttl_ms": 2,
    "monitoring_poll_interval_ms": 3,
    "monitoring_race_window_ms": 4,
}


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Every source set up: the field whose level is L is set by L and all levels below."""
    for key in list(os.environ):
        if key.startswith(("MONITORING_", "PG")) or key in ("DATABASE_URL", "ENVIRONMENT"):
            monkeypatch.delenv(key)
    system = tmp_path / "etc" / "festmon.env"
    user = tmp_path / "config" / "festmon" / "festmon.env"
    dotenv = tmp_path / "work" / ".env"
    for path in (system, user, dotenv):
        path.parent.mkdir(parents=True)
    monkeypatch.setattr(settings_light, "SYSTEM_ENV_FILE", system)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(dotenv.parent)
    files = {"system file": system, "user file": user, "env file": dotenv}
    overrides: dict[str, str] = {}
    for level, path in enumerate(LEVELS):
        lines = [
            f"{name.upper()}={1000 + 10 * level + top}"
            for name, top in FIELDS.items()
            if top >= level
        ]
        if path in files:
            files[path].write_text("\n".join(lines) + "\n")
        elif path == "environment":
            for line in lines:
                name, _, value = line.partition("=")
                monkeypatch.setenv(name, value)
        else:
            overrides = {line.partition("=")[0].lower(): line.partition("=")[2] for line in lines}
    return {"overrides": overrides, "files": files}


def _expected(name: str) -> int:
    top = FIELDS[name]
    return 1000 + 10 * top + top


def test_each_source_overrides_the_ones_below_it(sources: dict[str, object]) -> None:
    settings = load_settings(sources["overrides"], env_file=".env")  # type: ignore[arg-type]
    for name in FIELDS:
        assert getattr(settings, name) == _expected(name), name


def test_festmon_config_names_each_settings_source(
    sources: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    options = [
        f"--{name.replace('_', '-')}={value}" for name, value in sources["overrides"].items()
    ]  # type: ignore[attr-defined]
    assert main(["config", "--json", *options]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in document["settings"]}
    for name, top in FIELDS.items():
        row = rows[name.upper()]
        assert (row["value"], row["source"]) == (str(_expected(name)), LEVELS[top])
    files = sources["files"]
    assert rows["MONITORING_BATCH_SIZE"]["file"] == str(files["system file"])  # type: ignore[index]
    assert rows["MONITORING_THEME"]["source"] == "default"
    assert [item["source"] for item in document["files"]] == list(LEVELS[:3])
    assert document["database"]["kind"] == "embedded"


def test_festmon_config_masks_secrets(
    sources: dict[str, object], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://ops:Pw-Config-77@db.example/festival")
    monkeypatch.setenv("MONITORING_API_READ_TOKENS", "grafana=Tok-Config-88")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "Pw-Config-77" not in out and "Tok-Config-88" not in out
    assert "postgresql://ops:***@db.example/festival" in out
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Pw-Config-77" not in out and "Tok-Config-88" not in out


def test_a_missing_env_file_option_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.env"
    assert main(["--env-file", str(missing), "config"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"festmon: --env-file '{missing}': no such file"
    ]
    assert main(["--env-file", str(missing), "health"]) == 3  # a plugin's UNKNOWN


def test_a_bad_value_in_a_file_names_the_file(
    sources: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    system = sources["files"]["system file"]  # type: ignore[index]
    system.write_text("MONITORING_BELL=maybe\n")
    assert main(["db", "status"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("festmon: invalid setting MONITORING_BELL='maybe': ")
    assert err[0].endswith(f" (set in {system})")
