"""The top line: environment, database, scheduler leader, clock, data age, connection, pause."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from rich.text import Text
from textual.reactive import reactive

from festmon_tui.models import ConnectionState, MonitorState, ReplicaStatus
from festmon_tui.ui.display import component_classes, literal
from festmon_tui.ui.widgets.quiet import StateLines, coarse_age


def first_fit(segments: list[Text], width: int, separator: str) -> list[Text]:
    """Each segment on the first line with room for it, in order: a short segment fills the
    end of a line that a long one did not fit (at 80x24 the header has two lines, and the
    scheduler must not lose its place to a storm)."""
    lines: list[Text] = []
    for segment in segments:
        if not segment.plain:
            continue
        for line in lines:
            if line.cell_len + len(separator) + segment.cell_len <= width:
                line.append(separator)
                line.append_text(segment)
                break
        else:
            lines.append(segment.copy())
    return lines or [Text()]


class HeaderBar(StateLines):
    """Where am I, who runs detection, how old is what I see, and can I reach the database.

    Repaints only when its text changes: the clock shows minutes and the data age coarsens
    (issue 17.1), so a second's tick usually costs no byte on the terminal.
    """

    STYLES = "header-bar"
    COMPONENT_CLASSES = component_classes(
        STYLES, "title", "production", "ok", "problem", "paused", "muted"
    )

    paused: reactive[bool] = reactive(False, repaint=False)
    missed: reactive[int] = reactive(0, repaint=False)
    storms: reactive[tuple[str, ...]] = reactive((), repaint=False)

    def __init__(self, timezone: tzinfo, *, viewer: bool, id: str | None = None) -> None:
        super().__init__(timezone, id=id)
        self.viewer = viewer

    def watch_state(self) -> None:
        state = self.state
        alarm = state is not None and state.connection is ConnectionState.CONNECTED
        self.set_class(alarm and bool(state and state.detection_alarms), "-not-detecting")
        self.update_lines()

    def watch_paused(self) -> None:
        self.update_lines()

    def watch_missed(self) -> None:
        self.update_lines()

    def watch_storms(self) -> None:
        self.update_lines()

    def segments(self) -> list[Text]:
        """Most essential first, so a narrow terminal loses the least useful ones."""
        state, now = self.state, self.now
        segments = [Text("festmon", style=self._style("title"))]
        if state is not None:
            environment = state.environment.upper()
            style = "production" if environment == "PRODUCTION" else "muted"
            segments.append(Text(environment, style=self._style(style)))
        segments.extend(self._freshness(state, now))
        if self.storms:
            # The busiest rule, and how many more: the storm bar lists them all, and a long
            # list here would push the scheduler off an 80x24 header.
            more = f" +{len(self.storms) - 1}" if len(self.storms) > 1 else ""
            text = f" event storm: {self.storms[0]}{more} "
            segments.append(Text(text, style=self._style("problem")))
        if self.paused:
            segments.append(Text(f" PAUSED — {self.missed} new ", style=self._style("paused")))
        clock = now.astimezone(self.timezone)
        segments.append(Text(f"{clock:%H:%M} {clock.tzname() or ''}".strip()))
        if state is not None:
            # Who runs detection before which database: at 80x24 the last segments are the
            # first to go (issue 17.2: the leader stays in sight, also during a storm).
            if state.viewer or self.viewer:
                segments.append(Text("viewer (read-only)", style=self._style("muted")))
            leader = state.leader.label if state.leader is not None else "unknown"
            segments.append(Text("scheduler: ") + literal(leader, max_len=48))
            segments.append(Text("db ") + literal(state.database_label, max_len=48))
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
        # Connected but not detecting is not "ok": the alarm line above says why.
        ok = "muted" if state.detection_alarms else "ok"
        replica = state.replica
        if replica is None:
            return [
                Text(_data_age("data", state, now)),
                Text(f"connected{live}", style=self._style(ok)),
            ]
        age = _data_age("data", state, now)
        if state.refreshed_at is not None and replica.lag_s:
            # On a standby the data is as old as its replay lag when it was read.
            age = (
                f"data {coarse_age(state.refreshed_at - timedelta(seconds=replica.lag_s), now)} old"
            )
        return [Text(age), *self._replica(replica, live, ok, state, now)]

    def _replica(
        self, replica: ReplicaStatus, live: str, ok: str, state: MonitorState, now: datetime
    ) -> list[Text]:
        """Reads on a hot standby: its lag, or the fallback to the primary; what actions can do."""
        if replica.reads_from == "standby":
            lag = "?" if replica.lag_s is None else "0s"
            if replica.lag_s:
                lag = coarse_age(now - timedelta(seconds=replica.lag_s), now)
            segments = [Text(f"standby{live}, lag {lag}", style=self._style(ok))]
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
        if replica.actions_unavailable and not (state.viewer or self.viewer):
            segments.append(Text(" ACTIONS UNAVAILABLE ", style=self._style("problem")))
            segments.append(literal(replica.actions_unavailable, max_len=60, empty=""))
        return segments

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

    def lines(self) -> list[Text]:
        width = max(20, self.size.width)
        rest = first_fit(self.segments(), width, separator=" │ ")
        alarm = self.alarm_line(width)
        return rest if alarm is None else [alarm, *rest]


def _data_age(prefix: str, state: MonitorState, now: datetime) -> str:
    """'data 8s old', or 'no data yet' before the first refresh (never 'data no data yet old')."""
    if state.refreshed_at is None:
        return "no data yet"
    return f"{prefix} {coarse_age(state.refreshed_at, now)} old"
