"""systemd's notification protocol (sd_notify(3)), in the few lines it takes: READY=1 once the
scheduler runs, WATCHDOG=1 while its job loop is alive, STOPPING=1 on the way out.

The unit (examples/festmon.service) says Type=notify and WatchdogSec=; systemd then gives the
process NOTIFY_SOCKET (a unix datagram socket; "@name" is in the abstract namespace) and
WATCHDOG_USEC. A scheduler that stops feeding the watchdog is killed and restarted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


def _address(path: str) -> str:
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send `message` to systemd; False (and nothing sent) when not started by systemd."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path or not (path.startswith(("/", "@"))):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), _address(path))
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", path, exc)
        return False
    return True


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """Half of systemd's WatchdogSec (WATCHDOG_USEC, for this process), or None if off."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def feed_watchdog(
    alive: Callable[[], bool],
    interval_s: float,
    on_tick: Callable[[bool], None] | None = None,
) -> None:
    """Send WATCHDOG=1 every `interval_s` while `alive()`; a wedged event loop or a dead job
    loop sends nothing, and systemd restarts festmon after WatchdogSec. Cancel to stop."""
    while True:
        fed = alive() and notify("WATCHDOG=1")
        if on_tick is not None:
            on_tick(fed)
        await asyncio.sleep(interval_s)
