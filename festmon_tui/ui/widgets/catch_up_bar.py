"""A first run catching up on history (issue 19.3): one progress line, so it never looks hung.

Installed on a database that already holds months of payments, festmon's rules examine the
history first (the rows of `initial_lookback`, the whole log for the card ledger). While any
watermark is behind, one line under the header shows the slowest one's percent done as a bar,
the time left and how many rules are behind; it disappears once every watermark is caught up.
Quiet (issue 17.1): the line is computed again only when the whole percent (or the set of rules
behind) changes, so the rows and seconds that move every refresh cost no bytes in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from rich.text import Text

from festmon_tui.models import CatchUp
from festmon_tui.ui.widgets.quiet import QuietLines, coarse_age

BAR_CELLS = 20  # at most; fewer on a narrow terminal, never under MIN_CELLS
MIN_CELLS = 10
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def behind(progress: Sequence[CatchUp]) -> list[CatchUp]:
    """The watermarks still catching up."""
    return [p for p in progress if not p.caught_up]


def time_left(eta_seconds: float | None) -> str:
    """'about 40s left', coarse like the ages (10 s steps, then minutes, hours)."""
    if eta_seconds is None:
        return "time left not known yet"
    return f"about {coarse_age(_EPOCH - timedelta(seconds=eta_seconds), _EPOCH)} left"


class CatchUpBar(QuietLines):
    """`catching up ▕████░░░░▏ 42 % · about 3m left · slowest card_ledger · 2 rules behind`.

    Most important first: on a narrow terminal the end of the line is cut (with an ellipsis).
    """

    COMPONENT_CLASSES = {"catch-up-bar--label", "catch-up-bar--done", "catch-up-bar--todo"}

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: tuple[int, tuple[str, ...]] | None = None
        self._slowest: CatchUp | None = None
        self._behind = 0

    def on_mount(self) -> None:
        super().on_mount()
        self.display = False

    @property
    def percent(self) -> int | None:
        """The whole percent shown, None while hidden."""
        return None if self._key is None else self._key[0]

    def show(self, progress: Sequence[CatchUp]) -> None:
        rules = behind(progress)
        if not rules:
            self._key = self._slowest = None
            self.set_shown(False)
            return
        slowest = min(rules, key=lambda p: p.percent_done)
        # behind is never 100 % (the database rounds 99.96 to 100.0)
        percent = min(int(slowest.percent_done), 99)
        key = (percent, tuple(sorted(p.detector for p in rules)))
        if key == self._key:
            return  # the same percent: rows and seconds moved, the line stays as it is
        self._key, self._slowest, self._behind = key, slowest, len(rules)
        self.set_shown(True)
        self.update_lines()

    def lines(self) -> list[Text]:
        slowest = self._slowest
        if slowest is None or self._key is None:
            return [Text()]
        style = self.get_component_rich_style
        percent = self._key[0]
        label = "catching up "
        tail = Text.assemble(
            f" {percent} % · {time_left(slowest.eta_seconds)} · slowest ",
            # a watermark name is festmon's own, still drawn as plain text (never markup)
            Text(slowest.detector),
            f" · {self._behind} {'rule' if self._behind == 1 else 'rules'} behind",
        )
        room = self.size.width - len(label) - 2
        cells = max(MIN_CELLS, min(BAR_CELLS, room - len(tail)))
        done = cells * percent // 100
        line = Text(label, style=style("catch-up-bar--label", partial=True))
        line.append("▕")
        line.append("█" * done, style=style("catch-up-bar--done", partial=True))
        line.append("░" * (cells - done), style=style("catch-up-bar--todo", partial=True))
        line.append("▏")
        line.append_text(tail)
        return [line]
