"""Command palette entries built from the same registry as the keys, footer and help."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from festmon_tui.ui.commands import COMMANDS, Command, Scope, keys_of, offered
from festmon_tui.ui.filters import DEFAULT_FILTER
from festmon_tui.ui.typed_commands import USAGE, Typed, parse


def screen_scopes(screen: DOMNode) -> tuple[Scope, ...]:
    """The scopes live on a screen: APP everywhere, plus what the screen declares."""
    return (Scope.APP, *getattr(screen, "COMMAND_SCOPES", ()))


class RegistryCommands(Provider):
    """Every command usable on the screen the palette was opened from, with its key."""

    def _available(self) -> Iterator[tuple[Command, str]]:
        keymap: Mapping[str, str] = getattr(getattr(self.app, "config", None), "keymap", {})
        viewer = bool(getattr(self.screen, "viewer", False))
        scopes = screen_scopes(self.screen)
        for command in COMMANDS:
            if command.scope not in scopes or command.id == "palette":
                continue
            if not offered(command.action, viewer=viewer):
                continue
            keys = " ".join(keys_of(command, keymap))
            yield command, f"{command.title} ({keys})"

    def _run(self, command: Command) -> None:
        target = self.app if command.scope is Scope.APP else self.screen
        self.app.call_later(self.app.run_action, command.action, target)

    async def discover(self) -> Hits:
        for command, label in self._available():
            yield DiscoveryHit(label, partial(self._run, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command, label in self._available():
            score = max(matcher.match(label), matcher.match(command.help) * 0.5)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(label), partial(self._run, command), help=command.help
                )


class TypedCommands(Provider):
    """`ack 42`, `type race`, `card 04A1…`: a typed line is the first hit, ready to run."""

    async def search(self, query: str) -> Hits:
        current = getattr(getattr(self.app, "window", None), "event_filter", DEFAULT_FILTER)
        typed = parse(query, current)
        if typed is None:
            return
        if typed.mutating and not offered(MUTATING_PROBE, viewer=_viewer(self.app)):
            typed = Typed("read-only viewer: no lifecycle actions")
        if typed.message is None:  # incomplete: choosing it says what is missing
            run = partial(self.app.notify, typed.label, severity="warning", markup=False)
            yield Hit(1.0, Text(typed.label), run, help=USAGE)
            return
        # Text, not str: a str prompt is parsed as markup, and the line may hold a card id.
        label = Text(typed.label)
        yield Hit(1.0, label, partial(self.app.post_message, typed.message), help=USAGE)


# Any lifecycle action stands for all of them: a viewer is offered none.
MUTATING_PROBE = "acknowledge_event"


def _viewer(app: object) -> bool:
    return bool(getattr(getattr(app, "config", None), "viewer", False))
