"""Old name of ``ingest.registry``, kept only for two modules owned elsewhere right now
(``ui/settings_panel.py``: ``is_fetched``; ``rag/generate.py``: ``resolve_model``).

Delete this module once both import ``ingest.registry``.
"""

from ingest.registry import is_fetched, resolve_model

__all__ = ["is_fetched", "resolve_model"]
