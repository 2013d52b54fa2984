"""The terminal going away: SIGTERM and SIGHUP end the app, a lost tty too, without deadlock."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from types import FrameType

ExitOn = Callable[[int], None]


def handle_signals(loop: asyncio.AbstractEventLoop, exit_on: ExitOn) -> None:
    """SIGTERM and SIGHUP call `exit_on(signum)`; a hang-up must not deadlock Textual.

    A hung-up terminal gets SIGHUP *and* SIGCONT. Textual resumes application mode on
    SIGCONT and its writer thread dies on the first EIO, after which the main thread blocks
    for ever on the writer's full queue. So on SIGHUP the terminal is swapped for /dev/null
    first (the handler runs before SIGCONT's: signals are handled in number order), and
    SIGCONT only resumes a terminal that is still there.
    """
    loop.add_signal_handler(signal.SIGTERM, exit_on, signal.SIGTERM)

    def hang_up(signum: int, _frame: FrameType | None) -> None:
        detach_terminal()
        with suppress(RuntimeError):  # the loop is already closed: nothing left to stop
            loop.call_soon_threadsafe(exit_on, signum)

    resume = signal.getsignal(signal.SIGCONT)

    def resume_if_terminal(signum: int, frame: FrameType | None) -> None:
        if callable(resume) and terminal_alive():
            resume(signum, frame)

    signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGCONT, resume_if_terminal)


def exit_if_terminal_lost(exit_on: ExitOn) -> None:
    """The tty went away without a SIGHUP (checked once a second): leave as if hung up."""
    if not terminal_alive():
        detach_terminal()
        exit_on(signal.SIGHUP)


def detach_terminal() -> None:
    """Point stdin/stdout/stderr at /dev/null: writes to a dead terminal then cost nothing."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def terminal_alive() -> bool:
    """False once the controlling terminal is gone (SSH dropped): stdin stops being a tty."""
    try:
        return sys.__stdin__ is not None and os.isatty(sys.__stdin__.fileno())
    except (OSError, ValueError):
        return False
