"""What the dashboard needs from the settings, decided once by the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from textual.theme import BUILTIN_THEMES

from festmon_tui.settings_light import field_env_name
from festmon_tui.ui.commands import KeymapError, parse_keymap
from festmon_tui.ui.themes import DEFAULT_THEME, THEME_NAMES

if TYPE_CHECKING:
    from festmon_tui.settings import Settings

# The settings the dashboard's first frame is painted from, before the rest are validated.
FIRST_FRAME_SETTINGS = (
    "monitoring_timezone",
    "monitoring_theme",
    "monitoring_keymap",
    "monitoring_bell",
    "monitoring_storm_threshold_per_min",
    "monitoring_csv_safe",
)
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})


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
    # The CSV export neutralises spreadsheet formulas and escapes controls (MONITORING_CSV_SAFE).
    csv_safe: bool = False
    # New events a minute from one rule above which the list folds them into one line (17.7).
    storm_threshold_per_min: int = 200

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        viewer: bool = False,
    ) -> DashboardConfig:
        """Raises DashboardSettingError for a wrong MONITORING_KEYMAP or MONITORING_THEME."""
        values = {name: str(getattr(settings, name)) for name in FIRST_FRAME_SETTINGS}
        return cls.from_values(values, viewer=viewer)

    @classmethod
    def from_values(
        cls,
        values: Mapping[str, str],
        *,
        viewer: bool = False,
    ) -> DashboardConfig:
        """From raw setting values (FIRST_FRAME_SETTINGS, field names; absent = default).

        Raises DashboardSettingError for a wrong time zone, keymap or theme. A bell setting that
        is no boolean is off here; the full validation after the first frame refuses it.
        """
        try:
            keymap = parse_keymap(values.get("monitoring_keymap", ""))
        except KeymapError as exc:
            raise DashboardSettingError("MONITORING_KEYMAP", str(exc)) from None
        theme = values.get("monitoring_theme", DEFAULT_THEME)
        if theme not in THEME_NAMES and theme not in BUILTIN_THEMES:
            raise DashboardSettingError(
                "MONITORING_THEME",
                f"unknown theme {theme!r} (festmon's: {', '.join(THEME_NAMES)}; "
                "or one of Textual's, e.g. nord, gruvbox)",
            )
        zone = values.get("monitoring_timezone", "Europe/Brussels")
        try:
            timezone = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DashboardSettingError(
                field_env_name("monitoring_timezone"), f"unknown time zone {zone[:60]!r}"
            ) from None
        return cls(
            timezone=timezone,
            theme=theme,
            keymap=keymap,
            bell=values.get("monitoring_bell", "").strip().lower() in _TRUE,
            storm_threshold_per_min=_storm_threshold(
                values.get("monitoring_storm_threshold_per_min")
            ),
            viewer=viewer,
            csv_safe=values.get("monitoring_csv_safe", "").strip().lower() in _TRUE,
        )


def _storm_threshold(raw: str | None, default: int = 200) -> int:
    """The first frame's storm threshold; a bad value is reported by the full validation that
    follows (exit 2), so the frame before it uses the default."""
    try:
        value = int((raw or "").strip())
    except ValueError:
        return default
    return value if value >= 1 else default
