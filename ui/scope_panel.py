"""The chat's scope: which indexed manuals (and which languages) a question is answered from.

The sidebar shows two multiselects, the indexed documents and the passage languages, drawn in
both views so a choice survives a visit to the Documents view; ``render_scope`` turns them into
an ``ingest.records.Scope`` (None when nothing is picked: the whole index). The Documents view's
"Ask about this manual" button calls ``pick_only`` to scope the chat to that one manual.
Resolving the scope against the index is the engine's job (``rag.scope``); this module only draws
and remembers the choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ingest.lang import LANGUAGES
from ingest.records import Scope

DOCUMENTS_KEY = "docqa_scope_documents"
LANGUAGES_KEY = "docqa_scope_languages"
_LANGUAGE_NAMES = {
    "en": "English",
    "es": "Español",
    "fr": "Français",
    "de": "Deutsch",
    "it": "Italiano",
    "pt": "Português",
}


def render_scope(sources: Sequence[str]) -> Scope | None:
    """Draw the scope pickers in the sidebar for the indexed ``sources``; the chosen ``Scope``, or
    None for the whole index (also when nothing is indexed: then nothing is drawn)."""
    if not sources:
        return None
    # A manual deleted since it was picked is dropped before the widget sees it (it would refuse it).
    picked = st.session_state.get(DOCUMENTS_KEY, [])
    st.session_state[DOCUMENTS_KEY] = [source for source in picked if source in sources]
    sidebar = st.sidebar
    sidebar.subheader("Scope")
    documents = sidebar.multiselect(
        "Only these manuals",
        sources,
        key=DOCUMENTS_KEY,
        placeholder="All indexed manuals",
        help="Answer only from the manuals picked here; none picked: every indexed manual.",
    )
    languages = sidebar.multiselect(
        "Only passages in",
        list(LANGUAGES),
        key=LANGUAGES_KEY,
        format_func=lambda code: _LANGUAGE_NAMES.get(code, code),
        placeholder="Any language",
        help="Answer only from passages in these languages (as detected when they were indexed).",
    )
    return Scope(documents=tuple(documents), languages=tuple(languages)) or None


def pick_only(source: str) -> None:
    """Scope the chat to one manual, in any language (call it from a widget's callback, before
    the pickers are drawn)."""
    st.session_state[DOCUMENTS_KEY] = [source]
    st.session_state[LANGUAGES_KEY] = []


def describe(scope: Scope) -> str:
    """One line for the chat: what the questions are answered from.

    >>> describe(Scope(documents=("a.pdf", "b.md"), languages=("es",)))
    'Answering only from a.pdf, b.md, passages in Español.'
    """
    parts = list(scope.documents)
    if scope.languages:
        parts.append("passages in " + ", ".join(_LANGUAGE_NAMES.get(code, code) for code in scope.languages))
    return f"Answering only from {', '.join(parts)}."
