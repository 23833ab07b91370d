"""docqa's base layer: ingestion (files -> sections -> chunks -> vectors + catalog, in an index
folder), the index itself, and what every other package shares.

Besides the ingestion stages, ``ingest`` holds the pieces ``rag``, ``ui`` and ``bench`` build on:
the records that flow between stages (``ingest.records``), the errors (``ingest.errors``), the
settings (``ingest.settings``), the offline switches set when it is imported (``ingest.offline``),
the model registry (``ingest.registry``), building the embedder (``ingest.embedders``) and the
``Store`` seam (``ingest.store_protocol``). It imports nothing from ``rag`` or ``ui``; see
ARCHITECTURE.md at the repository root.
"""

from ingest.offline import enable_offline

enable_offline()
