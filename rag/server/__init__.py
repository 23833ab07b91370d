"""``docqa serve``: the HTTP API (FastAPI) over one index: OpenAI-compatible chat completions with
citations, retrieval, documents (list, upload, delete) and health.

Modules: ``app`` (``create_app``, the parts put together), ``routes`` (the endpoints),
``backend`` (the engine, the generation worker and the write lock), ``schemas`` (requests and
replies), ``chat`` (an answer as a chat completion or its server-sent events), ``auth`` (bearer
tokens), ``limits`` (the body size limit), ``errors`` (every failure as a JSON error body).
"""
