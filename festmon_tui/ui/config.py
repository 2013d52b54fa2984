"""What the dashboard needs from the settings, decided once by the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path

from textual.theme import BUILTIN_THEMES

from festmon_tui.settings import Settings
from festmon_tui.ui.commands import KeymapError, parse_keymap
from festmon_tui.ui.export import Renderer
from festmon_tui.ui.themes import DEFAULT_THEME, THEME_NAMES


class DashboardSettingError(ValueError):
    """A dashboard setting is wrong; `setting` names its environment variable."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class DashboardConfig:
    """Display options of one dashboard; `viewer` hides and refuses every lifecycle action."""

    timezone: tzinfo = UTC
    theme: str = DEFAULT_THEME
    keymap: Mapping[str, str] = field(default_factory=dict)
    bell: bool = False
    viewer: bool = False
    export_dir: Path = field(default_factory=Path.cwd)
    reload_interval_s: float = 10.0
    # A live change reloads the list at once; more changes within this time are folded into one
    # reload at its end (a detection run commits many events together).
    reload_coalesce_s: float = 0.25
    trends_interval_s: float = 60.0
    # Rows loaded for the current filter; more is a filter away (the list says "500+ events").
    window: int = 500
    # New events a minute from one rule above which the list folds them into one line (17.7).
    storm_threshold_per_min: int = 200
    renderers: Mapping[str, Renderer] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        viewer: bool = False,
        renderers: Mapping[str, Renderer] | None = None,
    ) -> DashboardConfig:
        """Raises DashboardSettingError for a wrong MONITORING_KEYMAP or MONITORING_THEME."""
        try:
            keymap = parse_keymap(settings.monitoring_keymap)
        except KeymapError as exc:
            raise DashboardSettingError("MONITORING_KEYMAP", str(exc)) from None
        theme = settings.monitoring_theme
        if theme not in THEME_NAMES and theme not in BUILTIN_THEMES:
            raise DashboardSettingError(
                "MONITORING_THEME",
                f"unknown theme {theme!r} (festmon's: {', '.join(THEME_NAMES)}; "
                "or one of Textual's, e.g. nord, gruvbox)",
            )
        return cls(
            timezone=settings.timezone,
            theme=theme,
            keymap=keymap,
            bell=settings.monitoring_bell,
            storm_threshold_per_min=settings.monitoring_storm_threshold_per_min,
            viewer=viewer,
            renderers=renderers or {},
        )
