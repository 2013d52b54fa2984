"""Fixtures of the UI tests; the helpers that drive the app live in tests/ui/pilot.py."""

from __future__ import annotations

import pytest

from tests.ui.fake_service import FakeMonitorService

# Re-exported only so that branches written before the helpers moved still import them here;
# new tests import from tests.ui.pilot.
from tests.ui.pilot import (  # noqa: F401
    event_ids,
    make_app,
    notifications,
    screen_text,
    settle,
    table_rows,
    until,
)


@pytest.fixture
def service() -> FakeMonitorService:
    return FakeMonitorService()
