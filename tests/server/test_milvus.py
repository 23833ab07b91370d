"""The API over an index whose vectors are in Milvus (``store = "milvus"``, a real Milvus Lite
file): the engine that answers and the upload that writes open the same store in one process."""

from __future__ import annotations

import pytest

from tests.server.conftest import make_client


@pytest.fixture()
def milvus_settings(tmp_path, settings):
    pytest.importorskip("milvus_lite")
    return settings.replace(store="milvus", milvus_uri=str(tmp_path / "milvus.db"))


def test_upload_retrieve_and_delete_with_milvus(milvus_settings, embedder, generator):
    generator.enqueue("The zebra code is 4417 [1].")
    with make_client(milvus_settings, embedder, generator) as client:
        files = {"file": ("zebra.md", b"# Zebra\n\nThe zebra code is 4417.\n", "text/markdown")}
        assert client.post("/v1/documents", files=files).status_code == 201
        second = {"file": ("giraffe.md", b"# Giraffe\n\nGiraffes eat leaves.\n", "text/markdown")}
        assert client.post("/v1/documents", files=second).status_code == 201  # engine open meanwhile
        hits = client.post("/v1/retrieve", json={"query": "zebra code", "top_k": 1}).json()["data"]
        assert "4417" in hits[0]["text"]
        body = {"messages": [{"role": "user", "content": "What is the zebra code?"}]}
        assert client.post("/v1/chat/completions", json=body).json()["citations"][0]["file"] == "zebra.md"
        assert client.delete("/v1/documents/zebra.md").status_code == 200
        hits = client.post("/v1/retrieve", json={"query": "zebra code 4417", "top_k": 3}).json()["data"]
        assert all("4417" not in h["text"] for h in hits)
