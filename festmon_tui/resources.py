"""Locate the files festmon ships beside its code: migrations and themes."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    # In a wheel the folders are copied into festmon_tui/_data; in a checkout they sit at the root.
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"festmon's {name}/ folder is missing from the installation")


def migrations_dir() -> Path:
    return _shipped("migrations")


def themes_dir() -> Path:
    return _shipped("themes")
