"""docqa ingestion: files -> sections -> chunks -> vectors + catalog, in an index folder."""

from ingest.offline import enable_offline

enable_offline()
