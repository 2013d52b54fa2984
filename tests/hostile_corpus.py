"""The shared corpus of hostile strings, and the check every surface that shows stored text runs.

Each value is something a payment device, a client or another operator can store (card ids,
device ids, `details`, notes, operator names). A surface passes when the RAW BYTES it writes to
a terminal hold none of `DANGEROUS` (`assert_terminal_safe`), and when the stored text is still
recognisable (shown escaped, not dropped).

The checker is written independently of `festmon_tui.presentation` on purpose: a test that used
the production function to judge the production function's output would prove nothing.
"""

from __future__ import annotations

import re

# Distinctive payloads, so a dashboard test can look for exactly them among Textual's own output.
OSC52 = "\x1b]52;c;cHduZWQtY2xpcGJvYXJk\x07"  # clipboard write ("pwned-clipboard")
OSC0 = "\x1b]0;PWNED-TITLE-0\x07"  # window + icon title
OSC2 = "\x1b]2;PWNED-TITLE-2\x1b\\"  # window title, ST-terminated
OSC8 = "\x1b]8;;https://evil.example/x\x1b\\click me\x1b]8;;\x1b\\"  # hyperlink
CSI_CLEAR = "\x1b[2J\x1b[3J\x1b[H"  # clear the screen and the scroll-back
CSI_REPORT = "\x1b[6n"  # device status report: the terminal types a reply into the input
CSI_RESIZE = "\x1b[8;5;20t"  # resize the window
C1_CSI = "\x9b2J"  # 8-bit CSI: clear the screen on terminals that honour C1
C1_OSC = "\x9d0;C1-TITLE\x9c"  # 8-bit OSC ... ST
CLICK_MARKUP = "[@click=app.quit]CLICKME[/]"

HOSTILE: dict[str, str] = {
    "click-markup": CLICK_MARKUP,
    "markup": "[bold red on white]loud[/] [link=https://evil.example]link[/link]",
    "csi": f"card{CSI_CLEAR}\x1b[31;1mred\x1b[0m{CSI_REPORT}{CSI_RESIZE}",
    "osc0": f"card{OSC0}",
    "osc2": f"card{OSC2}",
    "osc8": f"card{OSC8}",
    "osc52": f"card{OSC52}",
    "c1": f"card{C1_CSI}{C1_OSC}\x85nel",
    "c0": "card\x07bell\x08back\x7fdel\x0bvt\x0cff\rcr\ttab\nnewline",
    "bidi": "card\u202eevil\u202c\u2066iso\u2069\u200f\u061c",
    "zero-width": "card\u200bzw\u200c\u200d\u2060\ufeff\u00ad",
    "separators": "line\u2028para\u2029end",
    "long": "card-" + "L" * 4995,  # 5,000 characters
    "wide": "全角カード番号",
    "emoji": "card-\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1e7\U0001f1ea e\u0301",
    "backslash-text": "card-\\x1b[2J-\\u202e-\\",  # the TEXT \x1b, not ESC
}

# What must never reach a terminal from stored text. Newline is allowed (a line break of the
# output itself); a zero-width joiner only between two pictographs (an emoji sequence).
_CONTROLS = "\x00-\x09\x0b-\x1f\x7f-\x9f"
_FORMAT = (
    "\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\u2028\u2029\ufff9-\ufffb"
)
DANGEROUS = re.compile(f"[{_CONTROLS}{_FORMAT}]|(?<![\U0001f300-\U0001faff])\u200d")


def dangerous_in(text: str) -> list[str]:
    """The dangerous characters in `text` (empty when it is safe on a terminal)."""
    return [m.group() for m in DANGEROUS.finditer(text)]


def assert_terminal_safe(raw: bytes | str) -> str:
    """Decode what was written to a terminal and assert no dangerous character is in it."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    found = dangerous_in(text)
    assert not found, f"dangerous characters reached the terminal: {sorted(set(found))!r}"
    return text


# Sequences a full-screen app (Textual) may legitimately send are CSI SGR and cursor moves; these
# are the stored payloads, which must never appear in its output (dashboard pty run).
PAYLOAD_SEQUENCES = (
    OSC52,
    OSC0,
    OSC2,
    "\x1b]8;;https://evil.example",
    CSI_REPORT,
    CSI_RESIZE,
    "\x9b",
    "\x9d",
    "\u202e",
)


def assert_no_payload(raw: bytes) -> None:
    """For output that is itself full of escape sequences: none of the stored ones is there."""
    text = raw.decode("utf-8", errors="replace")
    found = [seq for seq in PAYLOAD_SEQUENCES if seq in text]
    assert not found, f"stored sequences reached the terminal: {found!r}"


def shown(value: str) -> str:
    """A recognisable, escape-free piece of `value` that a surface must still show."""
    for word in ("CLICKME", "loud", "PWNED", "card", "全角", "line", "\\x1b"):
        if word in value:
            return word
    return value[:5]
