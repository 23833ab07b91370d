"""docqa query engine: index folder -> retrieval -> prompt -> generator -> Answer."""

from ingest.offline import enable_offline

enable_offline()

from ingest.records import Scope  # noqa: E402
from rag.engine import Engine, ask, open_engine, stream  # noqa: E402

__all__ = ["Engine", "Scope", "ask", "open_engine", "stream"]
