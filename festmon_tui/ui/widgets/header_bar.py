"""The top line: environment, database, scheduler leader, clock, data age, connection, pause."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from festmon_tui.models import ConnectionState, MonitorState
from festmon_tui.ui.display import age, literal, pack


class HeaderBar(Widget):
    """Where am I, who runs detection, how old is what I see, and can I reach the database."""

    COMPONENT_CLASSES = {
        "header-bar--title",
        "header-bar--production",
        "header-bar--ok",
        "header-bar--problem",
        "header-bar--paused",
        "header-bar--muted",
    }

    state: reactive[MonitorState | None] = reactive(None, layout=True)
    now: reactive[datetime] = reactive(lambda: datetime.now(UTC), layout=True)
    paused: reactive[bool] = reactive(False, layout=True)
    missed: reactive[int] = reactive(0)

    def __init__(self, timezone: tzinfo, *, viewer: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timezone = timezone
        self.viewer = viewer

    def watch_state(self, state: MonitorState | None) -> None:
        alarm = state is not None and state.connection is ConnectionState.CONNECTED
        self.set_class(alarm and bool(state and state.detection_alarms), "-not-detecting")

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"header-bar--{name}", partial=True)

    def segments(self) -> list[Text]:
        """Most essential first, so a narrow terminal loses the least useful ones."""
        state, now = self.state, self.now
        segments = [Text("festmon", style=self._style("title"))]
        if state is not None:
            environment = state.environment.upper()
            style = "production" if environment == "PRODUCTION" else "muted"
            segments.append(Text(environment, style=self._style(style)))
        segments.extend(self._freshness(state, now))
        if self.paused:
            segments.append(Text(f" PAUSED — {self.missed} new ", style=self._style("paused")))
        clock = now.astimezone(self.timezone)
        segments.append(Text(f"{clock:%H:%M:%S} {clock.tzname() or ''}".strip()))
        if state is not None:
            segments.append(Text("db ") + literal(state.database_label, max_len=48))
            if state.viewer or self.viewer:
                segments.append(Text("viewer (read-only)", style=self._style("muted")))
            leader = state.leader.label if state.leader is not None else "unknown"
            segments.append(Text("scheduler: ") + literal(leader, max_len=48))
        return segments

    def _freshness(self, state: MonitorState | None, now: datetime) -> list[Text]:
        if state is None or state.connection is ConnectionState.CONNECTING:
            return [Text("connecting…", style=self._style("muted"))]
        data_age = age(state.refreshed_at, now) if state.refreshed_at else "no data yet"
        if state.connection is ConnectionState.UNAVAILABLE:
            return [
                Text(" DATABASE UNAVAILABLE ", style=self._style("problem")),
                Text(f"last data {data_age} old"),
                literal(state.last_error, max_len=60, empty=""),
            ]
        live = {"listen": " (live)", "poll": " (polling)"}.get(state.live_updates or "", "")
        # Connected but not detecting is not "ok": the alarm line above says why.
        ok = "muted" if state.detection_alarms else "ok"
        return [Text(f"data {data_age} old"), Text(f"connected{live}", style=self._style(ok))]

    def alarm_line(self, width: int) -> Text | None:
        """Not detecting (issue 13.3): a line of its own, first, cause and fix (never hidden)."""
        state = self.state
        if state is None or state.connection is not ConnectionState.CONNECTED:
            return None
        alarms = state.detection_alarms
        if not alarms:
            return None
        count = f"({len(alarms)}) " if len(alarms) > 1 else ""
        line = Text(f" NOT DETECTING {count}", style=self._style("problem"))
        line.append_text(Text(" ") + literal(alarms[0].message, max_len=200))
        line.truncate(width, overflow="ellipsis")
        return line

    def render(self) -> Text:
        width = max(20, self.size.width)
        rest = pack(self.segments(), width, separator=" │ ")
        alarm = self.alarm_line(width)
        return rest if alarm is None else Text("\n").join([alarm, rest])
