"""docqa's Streamlit app: ``docqa ui`` runs this script (``streamlit run ui/app.py``).

It reads the settings once per run (defaults, the ``--config`` file, ``DOCQA_*`` variables set
by ``docqa ui``), lets the sidebar adjust them for this session and pick the manuals the chat
answers from (``ui.scope_panel``), and draws the chosen view. Models
and the index are loaded by ``ui.resources`` once per process. Errors become messages in the page,
never tracebacks; unexpected ones are also logged with their traceback on the server. When
``DOCQA_UI_TOKEN`` is set, nothing but a token field is drawn until the session gives it
(``ui.access``).
"""

from __future__ import annotations

import logging
import os

import streamlit as st

from ingest.errors import DocqaError
from ingest.settings import load_settings
from ui.access import TOKEN_ENV, require_token
from ui.chat import render_chat
from ui.documents import list_documents, render_documents
from ui.scope_panel import render_scope
from ui.settings_panel import render_sidebar

_log = logging.getLogger("docqa.ui")


def main() -> None:
    """Draw one run of the app."""
    st.set_page_config(page_title="docqa · ask your manuals", page_icon=":material/menu_book:", layout="wide")
    require_token(os.environ.get(TOKEN_ENV, ""))  # stops this run until the session gives it
    try:
        base = load_settings()
    except DocqaError as err:
        st.error(f"The settings could not be read: {err}")
        return
    view, settings = render_sidebar(base)
    try:
        scope = render_scope([f.source for f in list_documents(settings.index_dir)])
        if view == "Documents":
            render_documents(settings)
        else:
            render_chat(settings, scope)
    except DocqaError as err:
        st.error(str(err))
    except Exception as err:  # the page shows a message; the server log keeps the traceback
        _log.exception("unexpected error in the app")
        st.error(f"Something went wrong: {type(err).__name__}: {err}. The server log has the details.")


main()
