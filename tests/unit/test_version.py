"""The version is written once (festmon_tui/__init__.py); the package metadata is built from it."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import festmon_tui

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_metadata_carries_the_packages_version() -> None:
    assert version("festmon") == festmon_tui.__version__


def test_pyproject_takes_the_version_from_the_package_instead_of_repeating_it() -> None:
    config = tomllib.loads(PYPROJECT.read_text())
    assert "version" not in config["project"]
    assert config["project"]["dynamic"] == ["version"]
    assert config["tool"]["hatch"]["version"]["path"] == "festmon_tui/__init__.py"
