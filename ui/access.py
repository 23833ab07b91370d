"""An optional access token for the app, for when it listens beyond this machine.

``docqa ui --token`` (or ``$DOCQA_UI_TOKEN``) hands the token to the app in ``DOCQA_UI_TOKEN``;
``require_token`` then shows only a token field until the browser session has given it, and
stops the run there, so no document, upload, re-index or delete is reachable before. Tokens are
compared in constant time (``hmac.compare_digest``). This is a shared secret, not user accounts:
for those, or for HTTPS, put the app behind a reverse proxy that authenticates.
"""

from __future__ import annotations

import hmac
import time

import streamlit as st

TOKEN_ENV = "DOCQA_UI_TOKEN"
"""Environment variable holding the access token; empty or unset: no token asked."""
_PASSED_KEY = "docqa_token_passed"
_WRONG_TOKEN_DELAY = 1.0  # seconds: slows guessing from one session


def token_matches(given: str, expected: str) -> bool:
    """Whether ``given`` is the token, compared in constant time; never true for an empty token.

    >>> token_matches("s3cret", "s3cret"), token_matches("s3cre", "s3cret"), token_matches("", "")
    (True, False, False)
    """
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def require_token(expected: str) -> None:
    """Return when no token is set or this session gave it; otherwise ask for it and stop the run."""
    if not expected or st.session_state.get(_PASSED_KEY):
        return
    st.title("docqa")
    given = st.text_input("Access token", type="password", key="docqa_token")
    if given:
        if token_matches(given, expected):
            st.session_state[_PASSED_KEY] = True
            del st.session_state["docqa_token"]
            st.rerun()
        time.sleep(_WRONG_TOKEN_DELAY)
        st.error("That is not the access token.")
    st.stop()
