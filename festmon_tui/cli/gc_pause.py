"""Start-up without the cyclic garbage collector: the dashboard's first frame comes sooner.

Starting the dashboard imports ~450 modules and builds the screen: long-lived objects, tens of
thousands of them, which the collector walks again and again as they accumulate (~160
collections, ~50 ms of CPU before the first frame; benchmarks/trace_first_frame.py). Pausing it
costs nothing that is not collected later: it is resumed after the first frame (or when the
command ends, whatever happens).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_paused = False


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside, unless resume() is called; as it was, afterwards."""
    global _paused
    if not gc.isenabled() or _paused:  # already off (the caller's choice, or an outer pause)
        yield
        return
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        resume()


def resume() -> None:
    """Collect automatically again, if paused() turned that off (idempotent)."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
