"""Settings not validated yet: what the dashboard starts from, so that it paints first."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from festmon_tui.settings_light import DatabaseChoice, RawValue, SettingsError, raw_values

if TYPE_CHECKING:
    from festmon_tui.settings import Settings


class PendingSettings:
    """The command line's overrides and dotenv file: raw values now, Settings by load().

    raw() reads the few values the first frame needs from the same sources, in the same order,
    as load(), without pydantic; load() builds and validates everything (and imports pydantic).
    """

    def __init__(self, overrides: Mapping[str, str], env_file: str | None) -> None:
        self.overrides = dict(overrides)
        self.env_file = env_file

    def raw(self, fields: Iterable[str]) -> dict[str, RawValue]:
        return raw_values(list(fields), self.overrides, self.env_file)

    def load(self) -> Settings:
        """Raises SettingsError (one line naming the variable, and the file it is in)."""
        from festmon_tui.settings import load_settings

        try:
            return load_settings(self.overrides, env_file=self.env_file)
        except SettingsError as exc:
            found = self.raw([exc.field]).get(exc.field) if exc.field else None
            if found is None or found.path is None:
                raise
            raise SettingsError(f"{exc} (set in {found.path})", exc.field) from None

    @staticmethod
    def announce(choice: DatabaseChoice) -> None:
        """Say on stderr when the command uses the embedded server (SPEC §3)."""
        if choice.kind == "embedded":
            sys.stderr.write(
                "festmon: no DATABASE_URL or PG* variables: using the embedded PostgreSQL "
                "server (`festmon db serve` prints its address)\n"
            )
            sys.stderr.flush()
