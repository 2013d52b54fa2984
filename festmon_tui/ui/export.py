"""Write the filtered events beside the operator, in a format the command line renders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from festmon_tui.models import Event
from festmon_tui.presentation import render_csv, render_csv_safe, render_json

# fmt ("csv" / "json") -> the text of a file: the documents of `festmon events --format ...`.
Renderer = Callable[[list[Event]], str]


def renderer(fmt: str, *, csv_safe: bool = False) -> Renderer | None:
    """The export document for `fmt`: exact values (a file round-trips), or with `csv_safe`
    (MONITORING_CSV_SAFE) formulas neutralised and control characters escaped."""
    if fmt == "json":
        return render_json
    if fmt == "csv":
        return render_csv_safe if csv_safe else render_csv
    return None


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
