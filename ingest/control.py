"""Control characters out of untrusted text: at load time, and before a terminal shows it.

Documents can hold control characters: NUL bytes, form feeds, and escape sequences such as
``ESC [ 2 J`` (clear the screen) or ``ESC ] 8`` (a hidden hyperlink) that a terminal obeys when
``docqa ask`` prints a heading or an answer quoting it. ``strip_control`` is applied once, where
sections are made (``ingest.load``), to every section's text and heading: C0 and C1 controls and
DEL go, form and vertical feeds become line ends, ``\\r\\n`` and ``\\r`` become ``\\n``; tabs and
line ends stay. ``printable`` is for what reaches a terminal from anywhere (a file's name, a
model's answer): it also drops ``\\r`` and the bidirectional overrides that can make a line read
differently from what it holds. Neither touches letters, accents or emoji.
"""

from __future__ import annotations

import re

_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_TERMINAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str) -> str:
    """``text`` with line ends unified and every other control character removed.

    >>> strip_control("Intro\\x1b[2J\\x00 > Setup\\r\\nnext\\fpage\\tend")
    'Intro[2J > Setup\\nnext\\npage\\tend'
    """
    return _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: only tabs and line ends among the controls.

    >>> printable("evil\\x1b]8;;http://x\\x07name\\r.pdf \\u202eftp.exe")
    'evil]8;;http://xname.pdf ftp.exe'
    """
    return _TERMINAL.sub("", text)
