"""Documents through the API: list, upload (saved in <index>/uploads and indexed, with the real
ingestion), delete (from the index, and the saved copy), and retrieval."""

from __future__ import annotations

from filelock import FileLock

from ingest.layout import LOCK


def _names(client) -> list[str]:
    reply = client.get("/v1/documents")
    assert reply.status_code == 200, reply.text
    return [d["file"] for d in reply.json()["data"]]


def test_list_documents(client):
    data = client.get("/v1/documents").json()["data"]
    assert [d["file"] for d in data] == ["manual.es.md", "manual.md"]
    assert all(len(d["id"]) == 16 and d["chunks"] > 0 and d["size"] > 0 for d in data)


def test_retrieve_returns_scored_passages_best_first(client):
    reply = client.post("/v1/retrieve", json={"query": "sine wave frequency", "top_k": 2})
    assert reply.status_code == 200, reply.text
    passages = reply.json()["data"]
    assert len(passages) == 2 and [p["rank"] for p in passages] == [1, 2]
    assert "sine wave" in passages[0]["text"] and passages[0]["heading"] == "Sine wave generator"
    assert passages[0]["score"] >= passages[1]["score"] and passages[0]["dense_score"] is not None
    scoped = client.post("/v1/retrieve", json={"query": "voltaje", "languages": ["es"]}).json()["data"]
    assert scoped and {p["lang"] for p in scoped} == {"es"}


def test_upload_indexes_the_file_and_delete_removes_it(client, index_dir):
    files = [
        ("file", ("Zebra Manual.md", b"# Zebra\n\nThe zebra code is 4417.\n", "text/markdown")),
        ("file", ("../../notes.txt", b"Giraffes eat leaves from tall trees.\n", "text/plain")),
    ]
    reply = client.post("/v1/documents", files=files)
    assert reply.status_code == 201, reply.text
    report = reply.json()
    assert sorted(report["added"]) == ["Zebra Manual.md", "notes.txt"] and report["chunks_added"] >= 2
    saved = index_dir / "uploads"
    assert sorted(p.name for p in saved.iterdir()) == ["Zebra Manual.md", "notes.txt"]
    assert "Zebra Manual.md" in _names(client)
    hits = client.post("/v1/retrieve", json={"query": "zebra code", "top_k": 1}).json()["data"]
    assert "4417" in hits[0]["text"]

    [zebra] = [d for d in client.get("/v1/documents").json()["data"] if d["file"] == "Zebra Manual.md"]
    deleted = client.delete(f"/v1/documents/{zebra['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert "Zebra Manual.md" not in _names(client)
    assert sorted(p.name for p in saved.iterdir()) == ["notes.txt"]
    hits = client.post("/v1/retrieve", json={"query": "zebra code 4417"}).json()["data"]
    assert all("4417" not in h["text"] for h in hits)

    assert client.delete("/v1/documents/notes.txt").status_code == 200  # by cited name
    assert client.delete("/v1/documents/notes.txt").json()["error"]["code"] == "document_not_found"


def test_delete_by_path_in_a_folder_keeps_the_users_file(client, tmp_path):
    reply = client.delete("/v1/documents/manual.md")
    assert reply.status_code == 200, reply.text
    assert _names(client) == ["manual.es.md"]
    assert (tmp_path / "docs" / "manual.md").is_file()  # only uploads are deleted from disk


def test_rejected_uploads_say_why(client, index_dir):
    cases = [
        ({"file": ("tool.exe", b"MZ...", "application/octet-stream")}, "upload_rejected", "not supported"),
        ({"file": ("empty.md", b"", "text/markdown")}, "upload_rejected", "empty"),
        ({"other": ("a.md", b"# A\n", "text/markdown")}, "no_file", "'file'"),
    ]
    for files, code, words in cases:
        reply = client.post("/v1/documents", files=files)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["code"] == code and words in reply.json()["error"]["message"]
    reply = client.post("/v1/documents", files={"file": ("blank.md", b"   \n\n", "text/markdown")})
    assert reply.status_code == 422 and "nothing was indexed" in reply.json()["error"]["message"]
    assert client.post("/v1/documents", data={"file": "not a file"}).status_code == 400


def test_upload_while_another_process_writes_is_409_and_saves_nothing(client, index_dir):
    with FileLock(str(index_dir / LOCK), thread_local=False):  # e.g. `docqa ingest` running
        reply = client.post("/v1/documents", files={"file": ("z.md", b"# Z\n\nzebra\n", "text/markdown")})
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "index_busy"
    assert not (index_dir / "uploads" / "z.md").exists()
    assert _names(client) == ["manual.es.md", "manual.md"]
