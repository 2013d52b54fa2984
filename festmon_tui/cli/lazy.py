"""Subcommand handlers that import their implementation only when that command runs.

`festmon --help` and the dashboard's first paint never pay for asyncpg, the scheduler or the
simulator: each command module's parser refers to its handler by name.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
