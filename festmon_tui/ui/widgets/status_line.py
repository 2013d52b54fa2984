"""The status line of a short terminal (80x24): notifications on one line, never over the list.

Textual shows a notification as a toast over the bottom right of the screen; at 80x24 a toast
(three lines and more) hides rows of the event list. On a short dashboard the toasts are
hidden (themes/festmon.tcss) and the newest notification that has not expired is shown here,
one line above the keys, for as long as its toast would have been; the list gives up one row
while it is shown.
"""

from __future__ import annotations

from rich.text import Text
from textual.notifications import Notification

from festmon_tui.ui.display import clean
from festmon_tui.ui.widgets.quiet import QuietLines

POLL_S = 0.5  # how soon a notification appears here (Textual sends no message to screens)


class StatusLine(QuietLines):
    COMPONENT_CLASSES = {
        "status-line--information",
        "status-line--warning",
        "status-line--error",
    }

    def on_mount(self) -> None:
        self.display = False
        self.set_interval(POLL_S, self.follow)

    def latest(self) -> Notification | None:
        """The newest notification still on (Textual keeps them on the app, unexpired)."""
        # The app's public record of the notifications it raised (FestmonApp.notices).
        notices: list[Notification] = getattr(self.app, "notices", [])
        shown = [n for n in notices if not n.has_expired]
        return max(shown, key=lambda n: n.raised_at) if shown else None

    def follow(self) -> None:
        short = self.screen.has_class("-short")
        notification = self.latest() if short else None
        self.set_shown(notification is not None)
        self.update_lines()

    def lines(self) -> list[Text]:
        notification = self.latest()
        if notification is None:
            return [Text()]
        style = self.get_component_rich_style(f"status-line--{notification.severity}", partial=True)
        line = Text()
        if notification.title:
            line.append(clean(notification.title, max_len=60) + ": ", style=style)
        # Shown as text: a notification made with markup=True is written without its tags.
        message = notification.message
        if notification.markup:
            message = Text.from_markup(message).plain
        line.append(clean(message, max_len=300))
        return [line]
