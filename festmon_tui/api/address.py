"""Where the API listens, checked from the command line alone (no settings, no HTTP imports)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"


class ApiConfigError(ValueError):
    """The API cannot start: one line naming the setting or option."""


@dataclass(frozen=True)
class Address:
    """Where the API listens."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """HOST:PORT, [IPv6]:PORT, :PORT or PORT (host 127.0.0.1); port 0 picks a free one."""
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    elif value.count(":") == 1 or (":" not in value):
        host, sep, port = value.rpartition(":") if ":" in value else ("", ":", value)
    else:
        host, sep, port = "", "", ""
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ApiConfigError(
            f"--http: {text[:60]!r} is not HOST:PORT (e.g. 127.0.0.1:8080, :8080, [::1]:8080)"
        )
    return Address(host or DEFAULT_HOST, int(port))
