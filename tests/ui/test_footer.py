"""The dashboard's footer: it follows the focus, and is rebuilt only for keys it never had."""

from __future__ import annotations

from textual.widgets._footer import FooterKey

from festmon_tui.ui.app import FestmonApp
from festmon_tui.ui.widgets.footer import KeysFooter
from tests.ui.pilot import make_app, settle, until


def _keys(app: FestmonApp) -> list[FooterKey]:
    """The keys on screen (a key the focus hides stays in the footer, not displayed)."""
    return [key for key in app.screen.query_one(KeysFooter).query(FooterKey) if key.display]


async def test_the_footer_follows_the_focus_between_the_list_and_the_search_box(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: "a" in {k.key for k in _keys(app)})
        assert "enter" in {k.key for k in _keys(app)}  # Open, the list's own key
        await pilot.press("slash")  # the search box: letters are text there, not commands
        await until(pilot, lambda: "a" not in {k.key for k in _keys(app)})
        hidden = set(app.screen.query_one(KeysFooter).query(FooterKey)) - set(_keys(app))
        assert hidden  # the letter commands, kept but not displayed
        await pilot.press("escape")  # back to the list
        await until(pilot, lambda: {"a", "enter"} <= {k.key for k in _keys(app)})
        assert hidden <= set(_keys(app))  # the same widgets, shown again: no rebuild


async def test_bindings_updated_with_the_same_keys_leave_the_footer_as_it_is(service):
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: "a" in {k.key for k in _keys(app)})
        before = _keys(app)
        for _ in range(3):
            app.screen.refresh_bindings()  # what every focus change and key does
            await pilot.pause()
        await settle(pilot)
        after = _keys(app)
        assert [k.key for k in after] == [k.key for k in before]
        assert all(a is b for a, b in zip(after, before, strict=True))  # not rebuilt
