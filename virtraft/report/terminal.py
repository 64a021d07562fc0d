"""Data on the terminal: shown as it is, never read as console markup.

A path, a verdict's reason, a scenario's summary or a server's exception
text is data. Printed through rich as a string it is markup: `[/x]` in it
raises a MarkupError (and a crash while `fuzz` prints loses the campaign's
summary), `[node 3]` vanishes as an unknown style, `:smile:` turns into an
emoji. Written raw, an escape sequence in it reaches the terminal, which may
recolour the screen, retitle the window or plant a hyperlink (OSC 8,
`\\x1b]8;;URL\\x1b\\\\`).

So everything printed that is not a literal of our own goes through this
module: `shown` for rich (a `Text`, which rich never parses), `visible` for
plain writes to stderr. Both write control characters as escapes.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls but newline and tab (layout, not commands), DEL, C1 controls
# (0x9b alone starts a control sequence on some terminals), and lone
# surrogates (from a JSON "\\ud800": no terminal encoding can write one).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """`text` with every control character written as an escape, as `\\x1b`."""
    return _CONTROL.sub(_escaped, str(text))


def one_line(text: object) -> str:
    """`text` as one line of printable characters, for an error message:
    newlines and tabs are escaped too."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(text: object, style: str = "") -> Text:
    """`text` for rich to print as it is: no markup, no emoji codes, control
    characters escaped; `style` is ours, never the data's."""
    return Text(visible(text), style=style)
