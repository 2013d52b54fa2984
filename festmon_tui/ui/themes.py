"""festmon's colour themes, read from themes/*.toml, and the stylesheet that uses them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.theme import Theme

from festmon_tui.resources import themes_dir

DEFAULT_THEME = "festmon-dark"
THEME_NAMES = ("festmon-dark", "festmon-light", "festmon-high-contrast")
STYLESHEET = "festmon.tcss"


def stylesheet_path() -> Path:
    return themes_dir() / STYLESHEET


def load_themes(directory: Path | None = None) -> list[Theme]:
    """Every festmon theme, in switching order (dark, light, high contrast)."""
    folder = directory or themes_dir()
    themes = []
    for name in THEME_NAMES:
        data = tomllib.loads((folder / f"{name}.toml").read_text(encoding="utf-8"))
        themes.append(Theme(**data))
    return themes


def fallback_variables(theme: Theme) -> dict[str, str]:
    """festmon's own variables derived from any theme's base colours (for Textual's themes)."""
    muted = theme.foreground or ("#a0a0a0" if theme.dark else "#606060")
    error = theme.error or "red"
    warning = theme.warning or "yellow"
    return {
        "sev-critical": error,
        "sev-high": theme.accent or warning,
        "sev-medium": warning,
        "sev-low": theme.primary,
        "sev-info": muted,
        "status-healthy": theme.success or "green",
        "status-warning": warning,
        "status-critical": error,
        "status-unknown": muted,
        "chain-break": error,
        "closed-event": muted,
        "pane-border": theme.panel or theme.primary,
        "paused": theme.accent or warning,
    }


def next_theme(current: str) -> str:
    """The theme after `current` in festmon's cycle (dark → light → high contrast → dark)."""
    if current not in THEME_NAMES:
        return THEME_NAMES[0]
    return THEME_NAMES[(THEME_NAMES.index(current) + 1) % len(THEME_NAMES)]
