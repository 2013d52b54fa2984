"""Subcommand handlers that import their implementation only when that command runs.

`festmon --help` and the dashboard's first paint never pay for asyncpg, the scheduler or the
simulator: each command module's parser refers to its handler by name.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from festmon_tui.cli.pending import PendingSettings
    from festmon_tui.settings import Settings


@dataclass(frozen=True)
class LazyHandler:
    """Calls `module.name(settings, args)`, importing `module` on the first call.

    `settings` are PendingSettings for the commands that paint first or read no settings."""

    module: str
    name: str

    def __call__(self, settings: Settings | PendingSettings, args: argparse.Namespace) -> int:
        handler = getattr(importlib.import_module(self.module), self.name)
        return int(handler(settings, args))


def add_command(
    sub: Any,
    name: str,
    handler: Callable[..., int],
    help_text: str,
    description: str | None = None,
    **defaults: Any,
) -> argparse.ArgumentParser:
    """One subcommand: its parser (help, description) and its handler; build_parser adds the
    settings options to it unless `no_settings=True`."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=description)
    parser.set_defaults(handler=handler, **defaults)
    return parser
