"""Logging to stderr: plain lines for a terminal, syslog priorities for the systemd journal."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# journald stamps each line itself; the <N> prefix is the line's syslog priority (sd-daemon(3)).
JOURNAL_FORMAT = "<%(priority)d>%(levelname)s %(name)s: %(message)s"
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(level: int) -> int:
    """The syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    for threshold, value in _PRIORITIES:
        if level >= threshold:
            return value
    return 7


class _Priority(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.priority = priority(record.levelno)
        return True


def under_journald(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stderr) is connected to the journal: JOURNAL_STREAM names its device
    and inode (systemd.exec(5)), so a child whose stderr was redirected is not fooled."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat((stream or sys.stderr).fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def formatter(journal: bool) -> logging.Formatter:
    return logging.Formatter(JOURNAL_FORMAT if journal else PLAIN_FORMAT)


def configure(*, verbose: bool) -> None:
    """The root logger writes to stderr, in the journal's format when stderr is the journal."""
    journal = under_journald()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(journal))
    if journal:
        handler.addFilter(_Priority())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
