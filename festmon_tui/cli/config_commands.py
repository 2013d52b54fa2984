"""`festmon config`, `festmon completion`, `festmon man` (imported when one of them runs)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from festmon_tui.cli.pending import PendingSettings
from festmon_tui.presentation import EXIT_OK, escape
from festmon_tui.settings import Settings, SettingsError, field_env_name, is_secret, redact_dsn
from festmon_tui.settings_light import env_files, raw_values, readable

MASK = "**********"


def shown_value(settings: Settings, name: str) -> str | None:
    """A setting's value for display: URLs without their password, other secrets masked."""
    value = getattr(settings, name)
    if value is None:
        return None
    if is_secret(name):
        secret = value.get_secret_value()
        return redact_dsn(secret) if name.endswith("_url") else MASK
    return str(value)


def settings_document(settings: Settings, pending: PendingSettings) -> dict[str, Any]:
    found = raw_values(list(Settings.model_fields), pending.overrides, pending.env_file)
    rows = []
    for name in Settings.model_fields:
        raw = found.get(name)
        rows.append(
            {
                "name": field_env_name(name),
                "value": shown_value(settings, name),
                "source": "default" if raw is None else raw.source,
                "file": None if raw is None or raw.path is None else str(raw.path),
            }
        )
    try:
        choice = settings.database()
        database: dict[str, Any] = {"kind": choice.kind, "label": choice.label, "error": None}
    except SettingsError as exc:
        database = {"kind": None, "label": None, "error": str(exc)}
    files = [
        {"source": source, "path": str(path), "present": readable(path)}
        for source, path in env_files(pending.env_file)
    ]
    return {"settings": rows, "database": database, "files": files}


def run_config(settings: Settings, args: argparse.Namespace) -> int:
    pending = PendingSettings(
        {
            k.removeprefix("setting__"): v
            for k, v in vars(args).items()
            if k.startswith("setting__")
        },
        args.env_file or ".env",
    )
    document = settings_document(settings, pending)
    if args.json:
        print(json.dumps(document, indent=2))
        return EXIT_OK
    width = max(len(row["name"]) for row in document["settings"])
    for row in document["settings"]:
        value = "(unset)" if row["value"] is None else escape(row["value"]) or '""'
        source = row["source"] + (f" {escape(row['file'])}" if row["file"] else "")
        print(f"{row['name']:<{width}}  {value}  [{source}]")
    database = document["database"]
    print()
    print(f"database: {database['label'] or database['error']}")
    for item in document["files"]:
        state = "read" if item["present"] else "absent"
        print(f"{item['source']}: {escape(item['path'])} ({state})")
    return EXIT_OK


def run_completion(_settings: object, args: argparse.Namespace) -> int:
    import shtab

    from festmon_tui.cli import build_parser

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


def run_man(_settings: object, _args: argparse.Namespace) -> int:
    from argparse_manpage.manpage import Manpage  # type: ignore[import-untyped]

    from festmon_tui import __version__
    from festmon_tui.cli import build_parser

    data = {
        "project_name": "festmon",
        "prog": "festmon",
        "version": __version__,
        "description": "watch a festival cashless-payment database for money going missing",
        "manual_section": 1,
        "manual_title": "festmon manual",
    }
    sys.stdout.write(str(Manpage(build_parser(), _data=data)))
    return EXIT_OK
