"""The `festmon db` subcommands' arguments; their work is in db_commands (imported on use)."""

from __future__ import annotations

from functools import partial
from typing import Any

from festmon_tui.cli.lazy import LazyHandler, add_command

_handler = partial(LazyHandler, "festmon_tui.cli.db_commands")


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="deploy and inspect festmon's database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate, status, serve = (
        add_command(db_sub, name, _handler(f"run_{name}"), help_text)
        for name, help_text in (
            ("migrate", "apply pending migrations (one transaction)"),
            ("status", "applied / pending migrations, payment tables"),
            (
                "serve",
                "start the embedded server, print its DSN for psql, keep it up until interrupted",
            ),
        )
    )
    migrate.add_argument(
        "--with-payment-schema",
        action="store_true",
        help="also create the reference payment tables (demo and tests; never on a real festival)",
    )
    status.add_argument("--json", action="store_true", help="print a JSON document")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="print the address of `festmon demo`'s database (festmon_demo) instead, so that "
        "health, events and psql read what a running demo shows",
    )
