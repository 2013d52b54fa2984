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
        if state.connection is ConnectionState.UNAVAILABLE:
            return [
                Text(" DATABASE UNAVAILABLE ", style=self._style("problem")),
                Text(_data_age("last data", state, now)),
                literal(state.last_error, max_len=60, empty=""),
            ]
        live = {"listen": " (live)", "poll": " (polling)"}.get(state.live_updates or "", "")
        return [
            Text(_data_age("data", state, now)),
            Text(f"connected{live}", style=self._style("ok")),
        ]

    def render(self) -> Text:
        return pack(self.segments(), max(20, self.size.width), separator=" │ ")


def _data_age(prefix: str, state: MonitorState, now: datetime) -> str:
    """'data 8s old', or 'no data yet' before the first refresh (never 'data no data yet old')."""
    if state.refreshed_at is None:
        return "no data yet"
    return f"{prefix} {age(state.refreshed_at, now)} old"
