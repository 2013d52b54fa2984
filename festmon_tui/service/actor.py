"""Who is acting: OS user, host, SSH client address, tty and the configured operator name."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping

from festmon_tui.models import Actor


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return f"uid:{os.getuid()}"


def _ssh_client(environ: Mapping[str, str]) -> str | None:
    # SSH_CLIENT is "addr port localport"; SSH_CONNECTION "addr port localaddr localport".
    for name in ("SSH_CLIENT", "SSH_CONNECTION"):
        value = environ.get(name, "").split()
        if value:
            return value[0]
    return None


def _tty(environ: Mapping[str, str]) -> str | None:
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.ttyname(fd)
        except OSError:
            continue
    return environ.get("SSH_TTY") or None


def current_actor(operator: str | None = None, environ: Mapping[str, str] | None = None) -> Actor:
    """The identity recorded with every lifecycle action of this process."""
    env = os.environ if environ is None else environ
    return Actor(
        os_user=_os_user(),
        host=socket.gethostname(),
        ssh_client=_ssh_client(env),
        tty=_tty(env),
        operator=(operator or "").strip() or None,
    )
