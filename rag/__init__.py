"""docqa query engine: index folder -> retrieval -> prompt -> generator -> Answer."""

from ingest.offline import enable_offline

enable_offline()
