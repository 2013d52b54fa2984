"""Bearer tokens: who may read, who may act; parsed from settings, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from festmon_tui.settings import SecretStr, Settings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_TOKEN_LENGTH = 16


class Role(IntEnum):
    """What a token may do; an operator may also read."""

    READ = 1
    OPERATOR = 2


class TokenError(ValueError):
    """A token setting is malformed; the message names the setting, never the token."""


@dataclass(frozen=True)
class Caller:
    """The holder of a valid token: its name is the actor in the audit trail."""

    name: str
    role: Role


@dataclass(frozen=True)
class _Token:
    secret: bytes
    caller: Caller

    @property
    def digest(self) -> bytes:
        return _digest(self.secret)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class Tokens:
    """The configured tokens; `find` compares against every one, so timing tells nothing."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def find(self, presented: str) -> Caller | None:
        # Digests, so that the comparison does not even depend on the tokens' lengths.
        wanted = _digest(presented.encode("utf-8", "surrogateescape"))
        found: Caller | None = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest, wanted):
                found = token.caller
        return found


def _pairs(text: str, role: Role, where: str) -> list[_Token]:
    tokens = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, secret = item.partition("=")
        name, secret = name.strip(), secret.strip()
        if not sep or not _NAME.fullmatch(name):
            raise TokenError(
                f"invalid setting {where}: each entry must be name=token with a name of letters, "
                "digits, '_', '.', '@' or '-' (at most 64)"
            )
        if len(secret) < MIN_TOKEN_LENGTH:
            raise TokenError(
                f"invalid setting {where}: the token of {name!r} is shorter than "
                f"{MIN_TOKEN_LENGTH} characters"
            )
        tokens.append(_Token(secret.encode(), Caller(name, role)))
    return tokens


def _from_file(path: Path) -> list[_Token]:
    where = f"MONITORING_API_TOKEN_FILE ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise TokenError(f"invalid setting {where}: cannot read it: {reason}") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, pair = line.partition(":")
        role = {"read": Role.READ, "operator": Role.OPERATOR}.get(kind.strip().lower())
        if not sep or role is None:
            raise TokenError(
                f"invalid setting {where}: line {number} must be read:name=token or "
                "operator:name=token"
            )
        tokens.extend(_pairs(pair, role, f"{where} line {number}"))
    return tokens


def _secret(value: SecretStr | None) -> str:
    return "" if value is None else value.get_secret_value()


def load_tokens(settings: Settings) -> Tokens:
    """Every configured token; TokenError (one line, no secret in it) when one is malformed."""
    tokens = _pairs(
        _secret(settings.monitoring_api_read_tokens), Role.READ, "MONITORING_API_READ_TOKENS"
    )
    tokens += _pairs(
        _secret(settings.monitoring_api_operator_tokens),
        Role.OPERATOR,
        "MONITORING_API_OPERATOR_TOKENS",
    )
    if settings.monitoring_api_token_file is not None:
        tokens += _from_file(settings.monitoring_api_token_file.expanduser())
    names: dict[str, Role] = {}
    secrets: set[bytes] = set()
    for token in tokens:
        if token.secret in secrets:
            raise TokenError(
                f"invalid API tokens: the token of {token.caller.name!r} is also given to "
                "another name (each caller needs its own token)"
            )
        if names.get(token.caller.name, token.caller.role) is not token.caller.role:
            raise TokenError(
                f"invalid API tokens: {token.caller.name!r} is both a read and an operator name"
            )
        secrets.add(token.secret)
        names[token.caller.name] = token.caller.role
    return Tokens(tokens)


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
