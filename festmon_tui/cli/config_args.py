"""`festmon config`, `festmon completion bash|zsh`, `festmon man`: about festmon itself."""

from __future__ import annotations

from functools import partial
from typing import Any

from festmon_tui.cli.lazy import LazyHandler, add_command

_handler = partial(LazyHandler, "festmon_tui.cli.config_commands")


def register(sub: Any) -> None:
    config = add_command(
        sub,
        "config",
        _handler("run_config"),
        "every setting, its value and where it comes from (secrets masked)",
        "Every setting, its value and its source: option, environment, env file "
        "(./.env or --env-file), user file (~/.config/festmon/festmon.env), system file "
        "(/etc/festmon/festmon.env) or default; lowest to highest: system file, user file, env "
        "file, environment, option. Secrets are masked. Also says which database commands use.",
        needs_database=False,
    )
    config.add_argument("--json", action="store_true", help="print a JSON document")
    completion = add_command(
        sub,
        "completion",
        _handler("run_completion"),
        "print a shell completion script (bash or zsh), generated from the parser",
        "Print a completion script. bash: `festmon completion bash > "
        "/etc/bash_completion.d/festmon`; zsh: `festmon completion zsh > "
        '"${fpath[1]}/_festmon"`.',
        no_settings=True,
    )
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    add_command(
        sub,
        "man",
        _handler("run_man"),
        "print festmon's manual page (roff), generated from the parser",
        "Print the manual page: `festmon man > festmon.1 && man ./festmon.1`.",
        no_settings=True,
    )
