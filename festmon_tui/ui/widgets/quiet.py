"""A quiet screen (issue 17.1): coarse ages, and widgets that repaint only the lines that changed.

Textual writes a widget's whole region to the terminal each time it is refreshed, whether or not
what it shows changed. Over SSH on a festival uplink every byte counts: the widgets here keep
the lines they show and, given new ones, mark only the changed lines dirty (nothing at all when
nothing changed). Ages and countdowns coarsen as they grow, so that a clock tick changes the
text (and costs bytes) only when the shown value changes: every 10 s under a minute, every
minute under an hour, every hour under a day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.reactive import reactive
from textual.widget import Widget

from festmon_tui.models import MonitorState
from festmon_tui.ui.display import age, countdown

STEP_S = 10  # under a minute, ages move in steps of this many seconds


def coarse_age(then: datetime | None, now: datetime) -> str:
    """'<10s', '20s', '3m', '2h', '4d': the text changes at most every 10 s, then less often."""
    return age(then, now, step_s=STEP_S)


def coarse_countdown(then: datetime | None, now: datetime) -> str:
    """'due', 'in <10s', 'in 20s', 'in 3m': rounded up, so it never says 'due' too early."""
    return countdown(then, now, step_s=STEP_S)


def next_change(then: datetime, now: datetime) -> float:
    """Seconds until coarse_age(then, ·) shows another text (the next step boundary)."""
    seconds = max(0.0, (now - then).total_seconds())
    step = (
        STEP_S if seconds < 60 else 60 if seconds < 3600 else 3600 if seconds < 86_400 else 86_400
    )
    return step - seconds % step


class QuietLines(Widget):
    """A widget drawn from a list of one-line Texts; `show_lines` repaints only the changed ones.

    Subclasses compute their lines (`lines()`, from their own data and the width) and call
    `update_lines()` whenever that data changes; no reactive attribute repaints them.
    """

    # One Text per line: a line too long is cut with an ellipsis, never wrapped onto the next.
    DEFAULT_CSS = """
    QuietLines {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines: tuple[Text, ...] = ()
        self._width = 0
        self.repainted_lines = 0  # how many lines were marked dirty (tests count them)

    def on_mount(self) -> None:
        # The lines hold the theme's styles: a new theme draws them all again.
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())

    def _restyle(self) -> None:
        self._lines = ()
        self.call_after_refresh(self.update_lines)

    def lines(self) -> Sequence[Text]:
        raise NotImplementedError

    def update_lines(self) -> None:
        if not self.is_mounted:
            return
        self.show_lines(self.lines())

    def show_lines(self, lines: Sequence[Text]) -> None:
        new = tuple(lines)
        old, self._lines = self._lines, new
        width = self.size.width
        if len(new) != len(old) or width != self._width:
            self._width = width
            self.repainted_lines += len(new)
            self.refresh(layout=len(new) != len(old))
            return
        for y, (before, after) in enumerate(zip(old, new, strict=True)):
            if before != after:
                self.repainted_lines += 1
                self.refresh(Region(0, y, width, 1))

    def set_shown(self, shown: bool) -> None:
        """Show or hide this line, and repaint the screen once: the panes below it move, and
        a pane that moved must not keep a blank line on the terminal (seen at 80x24 when the
        storm bar and the status line came up together). Rare: a storm starts or ends, a
        notification comes or goes."""
        if shown != self.display:
            self.display = shown
            self.screen.refresh()

    def on_resize(self) -> None:
        self.update_lines()

    def render(self) -> Text:
        text = Text("\n").join(self._lines)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text


class StateLines(QuietLines):
    """Lines drawn from the monitor state and the clock (a pane of the dashboard), styled by the
    component classes `<STYLES>--<name>`."""

    STYLES: ClassVar[str]

    state: reactive[MonitorState | None] = reactive(None, repaint=False)
    now: reactive[datetime] = reactive(lambda: datetime.now(UTC), repaint=False)

    def __init__(self, timezone: tzinfo, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone

    def watch_state(self) -> None:
        self.update_lines()

    def watch_now(self) -> None:
        self.update_lines()

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"{self.STYLES}--{name}", partial=True)
