"""The `festmon db` subcommands' arguments; their work is in db_commands (imported on use)."""

from __future__ import annotations

import argparse
from typing import Any

from festmon_tui.cli.lazy import LazyHandler


def _handler(name: str) -> LazyHandler:
    return LazyHandler("festmon_tui.cli.db_commands", name)


def register(sub: Any, settings_parent: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", help="deploy and inspect festmon's database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    mig = db_sub.add_parser(
        "migrate", parents=[settings_parent], help="apply pending migrations (one transaction)"
    )
    mig.add_argument(
        "--with-payment-schema",
        action="store_true",
        help="also create the reference payment tables (demo and tests; never on a real festival)",
    )
    mig.set_defaults(handler=_handler("run_migrate"))
    st = db_sub.add_parser(
        "status", parents=[settings_parent], help="applied / pending migrations, payment tables"
    )
    st.add_argument("--json", action="store_true", help="print a JSON document")
    st.set_defaults(handler=_handler("run_status"))
    serve = db_sub.add_parser(
        "serve",
        parents=[settings_parent],
        help="start the embedded server, print its DSN for psql, keep it up until interrupted",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="print the address of `festmon demo`'s database (festmon_demo) instead, so that "
        "health, events and psql read what a running demo shows",
    )
    serve.set_defaults(handler=_handler("run_serve"))
