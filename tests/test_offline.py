"""The default path never touches the network: a real embedding and a real generation with the
bundled models, in a process whose network is cut (``unshare -n`` where allowed) and whose every
socket connection or DNS lookup is recorded by an audit hook."""

from __future__ import annotations

import pytest

from tests.offline_audit import run_offline

_SCRIPT = r"""

from pathlib import Path
from ingest.embedders import load_embedder
from ingest.records import Message
from ingest.settings import load_settings
from rag.generate import TransformersGenerator
from ingest.registry import resolve_model

settings = load_settings()
vectors = load_embedder(settings.replace(embedder="embeddinggemma-300m", embed_backend="torch")).embed_queries(["¿Cómo mido un voltaje?"])
generator = TransformersGenerator(resolve_model("qwen2.5-coder-0.5b-instruct", "generator", settings.models_dir))
text = "".join(generator.stream([Message("user", "Say hello in Spanish, one word.")], max_new_tokens=5))
print(json.dumps({"dim": int(vectors.shape[1]), "norm": float((vectors[0] ** 2).sum()),
                  "text": text, "attempts": attempts}))
"""


@pytest.mark.slow
def test_real_embedding_and_generation_run_with_the_network_cut() -> None:
    result = run_offline(_SCRIPT)
    assert result["attempts"] == []
    assert result["dim"] == 768
    assert abs(result["norm"] - 1.0) < 1e-3
    assert result["text"].strip()
