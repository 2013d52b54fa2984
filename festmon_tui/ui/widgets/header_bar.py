"""The top line: environment, database, scheduler leader, clock, data age, connection, pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from festmon_tui.models import ConnectionState, MonitorState, ReplicaStatus
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
        data_age = age(state.refreshed_at, now) if state.refreshed_at else "no data yet"
        if state.connection is ConnectionState.UNAVAILABLE:
            return [
                Text(" DATABASE UNAVAILABLE ", style=self._style("problem")),
                Text(f"last data {data_age} old"),
                literal(state.last_error, max_len=60, empty=""),
            ]
        live = {"listen": " (live)", "poll": " (polling)"}.get(state.live_updates or "", "")
        replica = state.replica
        if replica is None:
            return [Text(f"data {data_age} old"), Text(f"connected{live}", style=self._style("ok"))]
        if state.refreshed_at is not None and replica.lag_s:
            # On a standby the data is as old as its replay lag when it was read.
            data_age = age(state.refreshed_at - timedelta(seconds=replica.lag_s), now)
        return [Text(f"data {data_age} old"), *self._replica(replica, live, state.viewer)]

    def _replica(self, replica: ReplicaStatus, live: str, viewer: bool) -> list[Text]:
        """Reads on a hot standby: its lag, or the fallback to the primary; what actions can do."""
        if replica.reads_from == "standby":
            lag = "?" if replica.lag_s is None else f"{replica.lag_s}s"
            segments = [Text(f"standby{live}, lag {lag}", style=self._style("ok"))]
        else:
            segments = [
                Text(" READS ON PRIMARY: standby away ", style=self._style("problem")),
                literal(replica.standby_error, max_len=60, empty=""),
            ]
        if replica.pending_replication:
            count = len(replica.pending_replication)
            segments.append(
                Text(f"{count} action(s) pending replication", style=self._style("paused"))
            )
        if replica.actions_unavailable and not (viewer or self.viewer):
            segments.append(Text(" ACTIONS UNAVAILABLE ", style=self._style("problem")))
            segments.append(literal(replica.actions_unavailable, max_len=60, empty=""))
        return segments

    def render(self) -> Text:
        return pack(self.segments(), max(20, self.size.width), separator=" │ ")
