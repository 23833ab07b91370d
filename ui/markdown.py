"""Untrusted text made safe to hand to Streamlit's Markdown: no remote images, no links.

Model answers and source labels (file names, headings) are written by whoever wrote the
documents. Streamlit renders their Markdown, so ``![](http://host/x.png)`` in a heading would make
the browser fetch that URL, and ``[click](javascript:...)`` would be a live link. ``safe_markdown``
breaks exactly the syntax that makes links and images, and leaves everything else as written:

- ``](`` becomes ``]\\(``: no inline link or image (``[text](url)``, ``![alt](url)``);
- ``]:`` becomes ``]\\:``: no link reference definition, so ``[text][ref]`` and ``[ref]`` stay text;
- ``<`` before ``scheme:`` or ``name@host`` becomes ``\\<``: no autolink (``<javascript:...>``).

A backslash before punctuation is Markdown's own escape, so the text reads the same. Bare
``https://`` addresses may still become links (GitHub-flavoured Markdown); they never load by
themselves. Raw HTML is already shown as text by Streamlit unless a caller allows it; this does
not change that. Inside code spans the escapes would show, which costs little: code quoting
``](`` is rare.
"""

from __future__ import annotations

import re

_AUTOLINK = re.compile(r"<(?=[A-Za-z][A-Za-z0-9+.\-]{1,31}:|[^\s<>@]+@)")


def safe_markdown(text: str) -> str:
    """``text`` with its links, images and autolinks turned into plain text.

    >>> safe_markdown("![x](http://h/p.png) and [1].")
    '![x]\\\\(http://h/p.png) and [1].'
    >>> safe_markdown("<javascript:alert(1)>")
    '\\\\<javascript:alert(1)>'
    """
    text = text.replace("](", "]\\(").replace("]:", "]\\:")
    return _AUTOLINK.sub(r"\\<", text)
