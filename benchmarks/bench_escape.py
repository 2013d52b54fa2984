"""presentation.escape against the two escapers it replaced (ui/display.clean, cli printable).

The dashboard escapes every card id of the list on each reload (500 rows) and the CLI every
cell of `festmon events`; the one escaping function must not be slower where it matters.
Measured in ONE run, so compare the ratios (the machine may be shared):

    .venv/bin/python benchmarks/bench_escape.py
"""

from __future__ import annotations

import platform
import re
import sys
import timeit

from festmon_tui.presentation import escape
from tests.hostile_corpus import HOSTILE

# --- the two functions as they were before presentation.py (commit 8361f2a) -----------------
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029}


def _old_escaped(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    if char == "\r":
        return "\\r"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def old_clean(value: str, *, multiline: bool = False, max_len: int | None = None) -> str:
    if max_len is not None:
        value = value[: max_len * 4]
    out: list[str] = []
    for char in value:
        code = ord(char)
        if multiline and char == "\n":
            out.append(char)
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in _BIDI:
            out.append(_old_escaped(char))
        else:
            out.append(char)
    shown = "".join(out)
    if max_len is not None and len(shown) > max_len:
        shown = shown[: max_len - 1] + "…"
    return shown


_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def old_printable(value: object) -> str:
    text = "" if value is None else str(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# --------------------------------------------------------------------------------------------
CARDS = [f"04:A2:{i:04X}:7F:{i % 97:02d}" for i in range(500)]  # an NFC-uid-like card id
HOSTILE_VALUES = list(HOSTILE.values())


def best(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number  # type: ignore[arg-type]


def main() -> None:
    print(f"python {sys.version.split()[0]} on {platform.machine()} ({platform.platform()})")
    rows = [
        ("500 card ids, max_len=22 (a list reload)",
         lambda: [old_clean(c, max_len=22) for c in CARDS],
         lambda: [escape(c, max_len=22) for c in CARDS], 200),
        ("500 card ids, no bound (CLI cells)",
         lambda: [old_printable(c) for c in CARDS],
         lambda: [escape(c) for c in CARDS], 200),
        ("hostile corpus (16 values), max_len=200",
         lambda: [old_clean(v, max_len=200) for v in HOSTILE_VALUES],
         lambda: [escape(v, max_len=200) for v in HOSTILE_VALUES], 200),
        ("hostile corpus (16 values), no bound",
         lambda: [old_clean(v) for v in HOSTILE_VALUES],
         lambda: [escape(v) for v in HOSTILE_VALUES], 50),
    ]  # fmt: skip
    print(f"{'case':<44} {'old µs':>9} {'new µs':>9} {'new/old':>8}")
    for name, old, new, number in rows:
        t_old, t_new = best(old, number), best(new, number)
        print(f"{name:<44} {t_old * 1e6:9.1f} {t_new * 1e6:9.1f} {t_new / t_old:8.2f}")


if __name__ == "__main__":
    main()
