"""Drawing an answer's sources: numbered citations, and the closest passages of a refusal.

Each source is an expander labelled ``[n] file · page p`` (or the heading). Opened, it shows the
passage with the cited sentence marked and, for a PDF, the page itself with the same sentence
highlighted. Pages are drawn only for open expanders (and from a cache), so a long conversation
does not redraw every page on every click. Labels go through ``ui.markdown.safe_markdown``: a
heading cannot load an image or carry a link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import streamlit as st

from ingest.records import Answer, Citation, Passage
from ui.markdown import safe_markdown
from ui.pages import highlight_html, is_pdf, page_png

Locate = Callable[[str], Path | None]
"""Maps a source (the index's relative path) to the original file, or None when it is gone."""

_CSS = """<style>
.docqa-passage { white-space: pre-wrap; font-size: 0.9rem; line-height: 1.45;
  border-left: 3px solid #d0d7de; padding: 0.4rem 0.8rem; margin-bottom: 0.5rem; }
.docqa-passage mark { background: #ffe27a; padding: 0 1px; }
</style>"""


def source_label(source: str, page: int | None, heading: str) -> str:
    """Where a passage is, for a person.

    >>> source_label("eyes17/en/eyes17.pdf", 12, "Intro > Setup")
    'eyes17/en/eyes17.pdf · page 12'
    >>> source_label("guide.html", None, "Install > On Linux")
    'guide.html · Install > On Linux'
    """
    if page is not None:
        return f"{source} · page {page}"
    return f"{source} · {heading}" if heading else source


def _show_source(
    key: str,
    label: str,
    passage_text: str,
    quote: str,
    source: str,
    page: int | None,
    locate: Locate,
    open_: bool,
) -> None:
    label = safe_markdown(label)  # headings and file names are the documents' text
    box = st.expander(label, expanded=open_, key=key, on_change="rerun", icon=":material/description:")
    with box:
        if page is None or not is_pdf(source):
            st.html(_CSS + highlight_html(passage_text, quote))
            return
        text_column, page_column = st.columns([2, 3])
        text_column.html(_CSS + highlight_html(passage_text, quote))
        if box.open:
            with page_column:
                _show_page(source, page, quote, locate)


def _show_page(source: str, page: int, quote: str, locate: Locate) -> None:
    path = locate(source)
    if path is None or not path.is_file():
        st.caption("The original file is no longer where it was indexed from; the page cannot be shown.")
        return
    try:
        png = page_png(str(path), path.stat().st_mtime, page, quote)
    except Exception as err:  # a damaged or changed PDF must not break the answer
        st.caption(safe_markdown(f"Page {page} could not be drawn: {err}"))
        return
    st.image(png, caption=f"{Path(source).name}, page {page}", width="stretch")


def _passage_of(answer: Answer, citation: Citation) -> str:
    for passage in answer.passages:
        if passage.chunk_id == citation.chunk_id:
            return passage.text
    return citation.quote


def render_citations(answer: Answer, turn: int, locate: Locate, *, open_first: bool = False) -> None:
    """The answer's citations, in order of first use; the first one open when ``open_first``."""
    if not answer.citations:
        return
    st.caption("Sources")
    for i, citation in enumerate(answer.citations):
        _show_source(
            f"docqa_src_{turn}_{citation.number}",
            f"[{citation.number}] {source_label(citation.source, citation.page, citation.heading)}",
            _passage_of(answer, citation),
            citation.quote,
            citation.source,
            citation.page,
            locate,
            open_first and i == 0,
        )


def render_passages(
    passages: Sequence[Passage],
    turn: int,
    locate: Locate,
    *,
    limit: int = 3,
    open_first: bool = False,
    title: str = "Closest passages in the documents",
) -> None:
    """The best passages: for a refusal, an uncited answer, or when no model could answer."""
    shown = list(passages)[:limit]
    if not shown:
        st.caption("Nothing in the documents came close.")
        return
    if title:
        st.caption(title)
    for i, passage in enumerate(shown):
        _show_source(
            f"docqa_near_{turn}_{passage.rank}",
            f"{source_label(passage.source, passage.page, passage.heading)} (score {passage.score:.2f})",
            passage.text,
            "",
            passage.source,
            passage.page,
            locate,
            open_first and i == 0,
        )
