"""Textual's footer, rebuilt only when keys it has never shown appear."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

SETTLE_S = 0.1  # how long after a bindings change the footer follows it

# What the footer shows of one binding: key, label, action, enabled, tooltip.
Shown = tuple[tuple[str, str, str, bool, str], ...]


class KeysFooter(Footer):
    """Footer recomposes (unmounts and mounts a widget per key, and lays the screen out) each
    time the screen's bindings are updated: several times per focus change, even when the keys
    it shows stay the same. Measured headless at 120x40: focusing the event list after a search
    cost ~60 ms of CPU, ~35 ms of it these rebuilds. This one does nothing when the keys stay
    the same, and when some of the keys it has go away or come back (the search box hides the
    letter commands) it hides or shows those; it rebuilds only for keys it does not have."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: Shown | None = None  # the keys on screen now
        self._built: Shown = ()  # the keys it has a widget for (what compose made)
        self._pending = False

    def _keys(self) -> Shown:
        return tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show
        )

    def bindings_changed(self, screen: Screen[Any]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or self._pending:
            return
        if self.is_attached and screen is self.screen:
            self._pending = True
            if self._shown is None:  # the first keys: at once
                self.call_after_refresh(self._update_keys)
            else:
                # After what the operator is waiting for: a focus change usually comes with new
                # content (search + Enter: the list), and showing or hiding keys lays the
                # screen out (~15 ms of CPU).
                self.set_timer(SETTLE_S, self._update_keys)

    async def _update_keys(self) -> None:
        self._pending = False
        if not self.is_attached:
            return
        keys = self._keys()
        if keys == self._shown:
            return
        built = [k for k in self._built if k in keys]
        if self._shown is not None and built == list(keys):
            # Every key wanted has its widget, in this order: hide the others.
            wanted = {(key, description, action) for key, description, action, *_ in keys}
            for widget in self.query(FooterKey):
                if "-command-palette" not in widget.classes:
                    widget.display = (widget.key, widget.description, widget.action) in wanted
            self._shown = keys
            return
        self._shown = self._built = keys
        await self.recompose()
