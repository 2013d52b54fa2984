"""`festmon serve`: the headless scheduler (a follower until it wins the lease) plus the API."""

from __future__ import annotations

import argparse
import asyncio

from festmon_tui.cli.headless import run_headless
from festmon_tui.cli.http_args import prepare_http
from festmon_tui.settings import Settings


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    api = prepare_http(settings, args)
    if isinstance(api, int):
        return api
    return asyncio.run(run_headless(settings, api))
