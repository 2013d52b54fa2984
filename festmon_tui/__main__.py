"""Allow `python -m festmon_tui`."""

from festmon_tui.cli import main

raise SystemExit(main())
