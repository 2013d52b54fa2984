"""Circuit breaker and scheduled jobs: state, failures, last error, probe countdown, job runs."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from rich.text import Text
from textual.reactive import reactive

from festmon_tui.models import BreakerState, BreakerStatus, JobStatus
from festmon_tui.ui.display import EMPTY, clean, component_classes, literal
from festmon_tui.ui.view_state import CyclePhase, CycleProgress
from festmon_tui.ui.widgets.quiet import StateLines, coarse_age, coarse_countdown


def cycle_summary(progress: CycleProgress, now: datetime) -> str:
    """'3 new events in 0.21 s (transaction_failures 1, …)' or why the cycle failed."""
    if progress.phase is CyclePhase.RUNNING:
        return f"running… {coarse_age(progress.started_at, now)}"
    if progress.phase is CyclePhase.FAILED:
        return f"failed: {clean(progress.error or '?', max_len=120)}"
    result = progress.result
    if result is None:
        return "not run from this dashboard"
    per_detector = ", ".join(
        f"{clean(d.name, max_len=30)} {d.events_created}"
        if d.success
        else f"{clean(d.name, max_len=30)} FAILED"
        for d in result.detectors
    )
    outcome = "ok" if result.success else "with errors"
    return (
        f"{outcome}: {result.total_events_created} new in {result.cycle_duration_seconds:.2f} s"
        + (f" ({per_detector})" if per_detector else "")
    )


class BreakerPane(StateLines):
    """The breaker line first (the essential one), then one line per job, then the manual cycle.

    Repaints only the lines whose text changed (countdowns are coarse: issue 17.1).
    """

    STYLES = "breaker-pane"
    COMPONENT_CLASSES = component_classes(STYLES, "closed", "open", "half-open", "label", "failed")

    cycle: reactive[CycleProgress] = reactive(CycleProgress, repaint=False)

    def __init__(self, timezone: tzinfo, id: str | None = None) -> None:
        super().__init__(timezone, id=id)
        self._compact = False  # the form of the lines shown

    def watch_cycle(self) -> None:
        self.update_lines()

    def breaker_line(self, breaker: BreakerStatus | None) -> Text:
        if breaker is None:
            return Text.assemble(("breaker ", self._style("label")), "no scheduler in this process")
        state_style = self._style(breaker.state.value.lower().replace("_", "-"))
        line = Text.assemble(
            ("breaker ", self._style("label")),
            (f" {breaker.state.value} ", state_style),
            f"  failures {breaker.failure_count}",
        )
        if breaker.state is not BreakerState.CLOSED and breaker.seconds_to_probe is not None:
            probe = self.now + timedelta(seconds=breaker.seconds_to_probe)
            line.append(f"  next probe {coarse_countdown(probe, self.now)}")
        if breaker.state is BreakerState.HALF_OPEN:
            line.append(f"  trial calls {breaker.half_open_calls}")
        line.append("  last error ", style=self._style("label"))
        line.append_text(literal(breaker.last_error, max_len=120, empty="none"))
        return line

    def job_line(self, job: JobStatus) -> Text:
        """'health    FAILED    2m  in 3m   0.08s timeout': the outcome before the details, so
        that a narrow pane cuts the details (issue 17.2)."""
        if job.running:
            word = Text("running")
        elif job.last_success is None:
            word = Text("not run")
        elif job.last_success:
            word = Text("ok")
        else:
            word = Text("FAILED", style=self._style("failed"))
        word.pad_right(7 - word.cell_len)
        took = EMPTY if job.last_duration_ms is None else f"{job.last_duration_ms / 1000:.2f}s"
        line = Text.assemble(
            (f"{clean(job.name, max_len=9):<9} ", self._style("label")),
            word,
            f" {coarse_age(job.last_started_at, self.now):>4}",
            f"  {coarse_countdown(job.next_run_at, self.now):<7}",
            f" {took:>6}",
        )
        if job.last_result and not job.running:
            line.append(" ")
            line.append_text(literal(job.last_result, max_len=60))
        return line

    def jobs_line(self, jobs: tuple[JobStatus, ...] | list[JobStatus]) -> Text:
        """All jobs on one line, failing ones first: 'jobs health FAILED 3m · critical ok <10s'.

        What a short terminal (80x24) shows instead of the job table (issue 17.2).
        """
        line = Text("jobs ", style=self._style("label"))
        ordered = sorted(jobs, key=lambda job: job.last_success is not False)
        for index, job in enumerate(ordered):
            if index:
                line.append(" · ")
            line.append(clean(job.name, max_len=12) + " ")
            if job.running:
                line.append("running")
            elif job.last_success is None:
                line.append("not run")
            elif job.last_success:
                line.append("ok")
            else:
                line.append("FAILED", style=self._style("failed"))
            if job.last_started_at is not None and not job.running:
                line.append(f" {coarse_age(job.last_started_at, self.now)}")
        return line

    @property
    def compact(self) -> bool:
        """On a short terminal the pane has two lines: the breaker, and every job on one."""
        return self.is_mounted and self.screen.has_class("-short")

    def notify_style_update(self) -> None:
        # The screen's breakpoint class (-short) reaches this pane as a style update (its border
        # and height change with it): that is when the form changes, not on every Resize.
        super().notify_style_update()
        if self.compact != self._compact:
            self.update_lines()

    def lines(self) -> list[Text]:
        state = self.state
        self._compact = self.compact
        if self._compact:
            jobs = state.jobs if state is not None else ()
            line = self.breaker_line(state.breaker if state else None)
            return [line, self.jobs_line(jobs)] if jobs else [line]
        lines = [self.breaker_line(state.breaker if state else None)]
        if state is not None and state.jobs:
            lines.append(
                Text("job       result  last  next       took", style=self._style("label"))
            )
            lines.extend(self.job_line(job) for job in state.jobs)
        lines.append(
            Text.assemble(("cycle now ", self._style("label")), cycle_summary(self.cycle, self.now))
        )
        return lines
