"""The dashboard uses Textual's public API only (issue 16.3): a private attribute of Textual's
App or Screen changes without notice between releases, and the status line once read one."""

from __future__ import annotations

import re
from pathlib import Path

import festmon_tui

PACKAGE = Path(festmon_tui.__file__).parent
# Attributes Textual keeps private on App / Screen / Widget that festmon once read or might.
PRIVATE = re.compile(
    r"\.(_notifications|_compositor|_screen_stack|_driver|_nodes|_message_queue)\b"
)


def test_no_module_reads_textual_private_state() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE.search(line)
    ]
    assert found == []
