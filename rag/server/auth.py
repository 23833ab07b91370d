"""Bearer tokens for ``docqa serve``: where they come from, when they are required, how they are checked.

Tokens come from a file (one per line; blank lines and ``#`` comments skipped) and from the
environment variable ``DOCQA_API_TOKENS`` (separated by commas or blanks). A server listening
beyond the loopback interface must have at least one (``check_exposure`` refuses to start
without); on loopback they are optional, and required once given. A request's token is compared
with every token in constant time (``hmac.compare_digest``), so timing tells nothing about how
much of it was right. ``TokenGate`` checks them in front of the app, before a request's body is
read. This module does not know the routes.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ingest.errors import ConfigError
from rag.server.errors import error_response

TOKENS_ENV = "DOCQA_API_TOKENS"
MIN_TOKEN_CHARS = 16  # a token short enough to guess is refused at start


def load_tokens(tokens_file: Path | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """The accepted tokens: the file's lines, then ``$DOCQA_API_TOKENS``'s items, without repeats.

    Raises:
        ConfigError: the file cannot be read, or a token is shorter than ``MIN_TOKEN_CHARS``.
    """
    tokens: list[str] = []
    if tokens_file is not None:
        try:
            lines = Path(tokens_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read the tokens file {tokens_file}: {err}; fix the path") from None
        tokens += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    tokens += [t for t in re.split(r"[,\s]+", env.get(TOKENS_ENV, "")) if t]
    for token in tokens:
        if len(token) < MIN_TOKEN_CHARS or any(ch.isspace() for ch in token):
            raise ConfigError(
                f"an API token has {len(token)} characters: use at least {MIN_TOKEN_CHARS}, e.g. "
                "from 'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'"
            )
    return tuple(dict.fromkeys(tokens))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(host: str, tokens: tuple[str, ...]) -> None:
    """Refuse to serve beyond loopback without tokens.

    Raises:
        ConfigError: ``host`` is not loopback and ``tokens`` is empty (the message says how to add some).
    """
    if not tokens and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without API tokens: anyone who can reach it could read "
            f"and change your index. Give --tokens-file FILE (one token per line) or set {TOKENS_ENV}, "
            "or listen on 127.0.0.1"
        )


def token_accepted(authorization: str | None, tokens: tuple[str, ...]) -> bool:
    """Whether an ``Authorization`` header carries one of ``tokens`` (always True with no tokens).

    Every token is compared, in constant time, whatever matched before.

    >>> token_accepted("Bearer abcdefghijklmnop", ("abcdefghijklmnop",)), token_accepted(None, ("x" * 16,))
    (True, False)
    """
    if not tokens:
        return True
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    offered = given.strip().encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(offered, token.encode())
    return found


class TokenGate:
    """ASGI middleware: every request but ``open_paths`` needs an accepted bearer token (401
    otherwise, before its body is read). Nothing is checked when ``tokens`` is empty.

    Args:
        app: the ASGI app.
        tokens: the accepted tokens (``load_tokens``).
        open_paths: paths served without a token, e.g. ``{"/healthz"}``.
    """

    def __init__(self, app: Any, tokens: tuple[str, ...], open_paths: frozenset[str]) -> None:
        self.app = app
        self.tokens = tokens
        self.open_paths = open_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.tokens and scope.get("path") not in self.open_paths:
            header = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not token_accepted(header.decode("latin-1"), self.tokens):
                response = error_response(
                    401,
                    "missing or wrong API token: send 'Authorization: Bearer TOKEN' with a token from "
                    f"the server's --tokens-file or {TOKENS_ENV}",
                    "invalid_api_key",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
