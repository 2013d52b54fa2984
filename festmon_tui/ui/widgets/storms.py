"""Event storms (issue 17.7): a rule that raises too many events a minute becomes one line.

Under a random-card payment load the race rule rightly raised ~100 events every 2 s; a list of
thirty thousand rows helps nobody. When a rule (an event type) raises more than
MONITORING_STORM_THRESHOLD_PER_MIN new events in the last minute, the dashboard shows it as one
line with its count and rate (w lists its events again, and folds them back), the header says
"event storm: <rule>", and the other rules' events stay in the list as they were, so a
CRITICAL of another rule is still at the top. Only the screen changes: every event is stored
and counted as before.

A storm ends when the rule's rate has fallen to half the threshold (so that a rate hovering at
the threshold does not make the list flicker between the two views).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.text import Text

from festmon_tui.models import Event, Severity
from festmon_tui.ui.display import component_classes, count, type_label
from festmon_tui.ui.widgets.quiet import QuietLines

WINDOW = timedelta(minutes=1)
DEFAULT_THRESHOLD_PER_MIN = 200


@dataclass(frozen=True)
class Storm:
    """One rule in a storm: its events counted since the storm began, and its rate now."""

    event_type: str
    events: int
    per_min: int
    since: datetime
    worst: Severity

    @property
    def rule(self) -> str:
        return type_label(self.event_type)


@dataclass
class _Ongoing:
    since: datetime
    events: int
    worst: Severity


class StormWatch:
    """Counts new events per rule over the last minute, each event once (by id), from the
    live change stream and from the loaded list, whichever sees it first."""

    def __init__(self, threshold_per_min: int = DEFAULT_THRESHOLD_PER_MIN) -> None:
        self.threshold = threshold_per_min
        self._seen: dict[int, datetime] = {}
        self._recent: dict[str, deque[tuple[datetime, int]]] = defaultdict(deque)
        self._severity: dict[int, Severity] = {}
        self._ongoing: dict[str, _Ongoing] = {}

    def record(
        self, event_id: int, event_type: str, when: datetime, severity: Severity | None = None
    ) -> None:
        if event_id in self._seen:
            return
        self._seen[event_id] = when
        self._recent[event_type].append((when, event_id))
        if severity is not None:
            self._severity[event_id] = severity
        storm = self._ongoing.get(event_type)
        if storm is not None:
            storm.events += 1
            if severity is not None and severity.weight > storm.worst.weight:
                storm.worst = severity

    def record_window(self, events: Iterable[Event], now: datetime) -> None:
        """Events of the loaded list detected in the last minute (the list may see them first)."""
        since = now - WINDOW
        for event in events:
            when = event.detection_timestamp
            if when is not None and when >= since:
                self.record(event.event_id, str(event.event_type), when, event.severity)

    def update(self, now: datetime) -> list[Storm]:
        """Forget what is older than a minute; start and end storms; the storms now, by rule."""
        since = now - WINDOW
        for event_type, recent in list(self._recent.items()):
            while recent and recent[0][0] < since:
                _, event_id = recent.popleft()
                self._seen.pop(event_id, None)
                self._severity.pop(event_id, None)
            rate = len(recent)
            storm = self._ongoing.get(event_type)
            if storm is None and rate > self.threshold:
                worst = max(
                    (self._severity.get(i, Severity.INFO) for _, i in recent),
                    key=lambda s: s.weight,
                )
                self._ongoing[event_type] = _Ongoing(recent[0][0], rate, worst)
            elif storm is not None and rate <= self.threshold // 2:
                del self._ongoing[event_type]
            if not recent:
                del self._recent[event_type]
        return [
            Storm(t, s.events, len(self._recent.get(t, ())), s.since, s.worst)
            for t, s in sorted(self._ongoing.items())
        ]


def collapse(events: Sequence[Event], storms: Sequence[Storm]) -> list[Event]:
    """The list without the storming rules' events (the storm lines stand for them)."""
    storming = {storm.event_type for storm in storms}
    return [event for event in events if str(event.event_type) not in storming]


class StormBar(QuietLines):
    """One line per storming rule, above the list; hidden when there is no storm."""

    COMPONENT_CLASSES = component_classes("storm-bar", "storm", "critical", "hint")

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.storms: list[Storm] = []
        self.expanded = False

    def show(self, storms: list[Storm], *, expanded: bool) -> None:
        self.storms, self.expanded = storms, expanded
        self.set_shown(bool(storms))
        self.update_lines()

    def lines(self) -> list[Text]:
        style = self.get_component_rich_style
        lines = []
        for storm in self.storms:
            severity = "critical" if storm.worst is Severity.CRITICAL else "storm"
            line = Text.assemble(
                (f" STORM {storm.rule} ", style(f"storm-bar--{severity}", partial=True)),
                f" {count(storm.events)} events · {count(storm.per_min)}/min",
                f" · worst {storm.worst.value}",
            )
            hint = " · w folds them" if self.expanded else " · w lists them"
            line.append(hint, style=style("storm-bar--hint", partial=True))
            lines.append(line)
        return lines or [Text()]
