"""Everything the API needs that can be wrong, checked before anything starts (no HTTP imports)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from festmon_tui.api.auth import TokenError, Tokens, load_tokens
from festmon_tui.api.limits import LimitClass, LimitsError, parse_limits
from festmon_tui.settings import Settings

DEFAULT_HOST = "127.0.0.1"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


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


def parse_origins(text: str) -> list[str]:
    origins = []
    for origin in filter(None, (part.strip() for part in text.split(","))):
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ApiConfigError(
                f"invalid setting MONITORING_API_CORS_ORIGINS: {origin[:60]!r} is not an origin "
                "such as https://admin.example.org (scheme and host, no path), or *"
            )
        origins.append(origin)
    return origins


@dataclass(frozen=True)
class ApiConfig:
    """Checked settings plus the listening socket (bound already: a busy port fails early)."""

    address: Address
    sock: socket.socket
    tokens: Tokens
    limits: dict[LimitClass, int]
    cors_origins: list[str]
    metrics_token_required: bool

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


def _bind(address: Address) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:
        raise ApiConfigError(f"--http {address}: cannot resolve the host: {exc}") from None
    family, kind, proto, _name, where = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ApiConfigError(
            f"--http {address}: cannot listen there: {exc.strerror or exc}"
        ) from None
    return sock


def prepare_api(settings: Settings, address: Address) -> ApiConfig:
    """Check the API's settings and bind its socket; ApiConfigError (one line) if one is off."""
    try:
        tokens = load_tokens(settings)
        limits = parse_limits(settings.monitoring_api_rate_limits)
    except (TokenError, LimitsError) as exc:
        raise ApiConfigError(str(exc)) from None
    if len(tokens) == 0:
        raise ApiConfigError(
            "--http needs at least one API token: set MONITORING_API_READ_TOKENS or "
            "MONITORING_API_OPERATOR_TOKENS (name=token,...) or MONITORING_API_TOKEN_FILE"
        )
    origins = parse_origins(settings.monitoring_api_cors_origins)
    return ApiConfig(
        address=address,
        sock=_bind(address),
        tokens=tokens,
        limits=limits,
        cors_origins=origins,
        metrics_token_required=settings.monitoring_api_metrics_token_required,
    )
