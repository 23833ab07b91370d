"""The llama-index adapter: retriever nodes, the LLM wrapper, and a query engine on a real index.

llama-index's global ``Settings`` must never be used for the LLM: the tests check it stays unset.
"""

from __future__ import annotations

import pytest
from llama_index.core import Settings as LlamaSettings
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.schema import MetadataMode, QueryBundle

from rag.engine import Engine, open_engine
from rag.llamaindex import DocqaLLM, DocqaRetriever, as_query_engine
from tests.fakes import HashEmbedder, ReplayGenerator
from tests.rag.test_engine import _settings


@pytest.fixture(autouse=True)
def _no_global_llm():
    assert LlamaSettings._llm is None
    yield
    assert LlamaSettings._llm is None, "llama-index's global Settings.llm was resolved"


def test_retriever_returns_nodes_with_scores_and_locations(tmp_path, index, embedder):
    engine = Engine(_settings(tmp_path), index, embedder, ReplayGenerator())
    nodes = DocqaRetriever(engine, k=2).retrieve("How do I measure a voltage?")
    assert len(nodes) == 2 and nodes[0].node.node_id == "c001"
    assert nodes[0].score >= nodes[1].score
    assert nodes[0].node.metadata["source"] == "manual.pdf" and nodes[0].node.metadata["page"] == 2
    shown = nodes[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert "manual.pdf" in shown and "dense_score" not in shown


def test_llm_wrapper_passes_roles_and_streams():
    generator = ReplayGenerator("Hello there.", "One two.", "Streamed reply.")
    llm = DocqaLLM(generator, max_new_tokens=16)
    reply = llm.chat(
        [ChatMessage(role=MessageRole.SYSTEM, content="rules"), ChatMessage(role="user", content="hi")]
    )
    assert reply.message.content == "Hello there."
    assert [(m.role, m.content) for m in generator.prompts[0]] == [("system", "rules"), ("user", "hi")]
    assert llm.complete("say").text == "One two."
    pieces = [r.delta for r in llm.stream_complete("x")]
    assert "".join(pieces) == "Streamed reply." and len(pieces) == 2
    assert llm.metadata.context_window == 4096 and llm.metadata.is_chat_model


def test_query_engine_on_a_real_index(tmp_path):
    from ingest.pipeline import ingest_folder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "voltage.txt").write_text("To measure a voltage, connect the signal to A1.", encoding="utf-8")
    (docs / "scope.txt").write_text("The oscilloscope shows four channels.", encoding="utf-8")
    settings = _settings(tmp_path, embedder="hash-embedder", chunk_tokens=32, chunk_overlap=4)
    ingest_folder(docs, settings.index_dir, HashEmbedder(), settings)
    generator = ReplayGenerator("Connect the signal to A1.")
    with open_engine(settings, embedder=HashEmbedder(), generator=generator) as engine:
        response = as_query_engine(engine, k=1).query(QueryBundle("How do I measure a voltage?"))
    assert str(response) == "Connect the signal to A1."
    assert response.source_nodes[0].node.metadata["source"].endswith("voltage.txt")
    prompt = "\n".join(m.content for m in generator.prompts[0])
    assert "connect the signal to A1" in prompt and "How do I measure a voltage?" in prompt
