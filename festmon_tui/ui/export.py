"""Write the filtered events beside the operator, in a format the command line renders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from festmon_tui.models import Event

# fmt ("csv" / "json") -> the text of a file; the CLI's `festmon events` renderers are passed in,
# so the dashboard's export and `festmon events --format ...` are the same document.
Renderer = Callable[[list[Event]], str]


def export_path(directory: Path, fmt: str, now: datetime) -> Path:
    """festmon-events-20250712-213000.csv, with -2, -3 … when that name is taken."""
    stem = f"festmon-events-{now:%Y%m%d-%H%M%S}"
    path = directory / f"{stem}.{fmt}"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.{fmt}"
    return path


def write_export(text: str, fmt: str, directory: Path, now: datetime) -> Path:
    """Write a new file (never overwrite one) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = export_path(directory, fmt, now)
    with path.open("x", encoding="utf-8", newline="") as out:
        out.write(text)
    return path
