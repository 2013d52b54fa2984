"""`festmon config`, `festmon completion bash|zsh`, `festmon man`: about festmon itself."""

from __future__ import annotations

import argparse
from typing import Any

from festmon_tui.cli.lazy import LazyHandler


def _handler(name: str) -> LazyHandler:
    return LazyHandler("festmon_tui.cli.config_commands", name)


def register(sub: Any, settings_parent: argparse.ArgumentParser) -> None:
    config = sub.add_parser(
        "config",
        parents=[settings_parent],
        help="every setting, its value and where it comes from (secrets masked)",
        description="Every setting, its value and its source: option, environment, env file "
        "(./.env or --env-file), user file (~/.config/festmon/festmon.env), system file "
        "(/etc/festmon/festmon.env) or default; lowest to highest: system file, user file, env "
        "file, environment, option. Secrets are masked. Also says which database commands use.",
    )
    config.add_argument("--json", action="store_true", help="print a JSON document")
    config.set_defaults(handler=_handler("run_config"), needs_database=False)
    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh), generated from the parser",
        description="Print a completion script. bash: `festmon completion bash > "
        "/etc/bash_completion.d/festmon`; zsh: `festmon completion zsh > "
        '"${fpath[1]}/_festmon"`.',
    )
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    completion.set_defaults(handler=_handler("run_completion"), no_settings=True)
    man = sub.add_parser(
        "man",
        help="print festmon's manual page (roff), generated from the parser",
        description="Print the manual page: `festmon man > festmon.1 && man ./festmon.1`.",
    )
    man.set_defaults(handler=_handler("run_man"), no_settings=True)
