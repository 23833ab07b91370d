"""llama-index adapter: use a docqa index from llama-index code.

``DocqaRetriever`` is a llama-index ``BaseRetriever`` over ``Engine.retrieve`` (fused dense +
lexical, nodes carry file/page/heading metadata); ``DocqaLLM`` wraps a docqa ``Generator`` as a
llama-index ``CustomLLM``; ``as_query_engine`` joins them into a ``RetrieverQueryEngine``.

Every llama-index object gets its LLM, callback manager and prompt helper passed in explicitly:
llama-index's global ``Settings`` is never read for an LLM or written, so nothing here can silently
build a remote client. Answers through this path use llama-index's response synthesis, not docqa's
prompt, citation checks or refusal threshold (use ``Engine.ask`` for those).

>>> query_engine = as_query_engine(engine)                       # doctest: +SKIP
>>> print(query_engine.query("How do I measure a voltage?"))      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.indices.prompt_helper import ChatPromptHelper, PromptHelper
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from ingest.records import Message
from rag.generate import Generator

_SCORE_KEYS = ["rank", "dense_score", "lexical_score", "chunk_id"]


class DocqaRetriever(BaseRetriever):
    """A llama-index retriever over a docqa ``Engine``.

    Args:
        engine: an open ``rag.engine.Engine``.
        k: passages per query (default the engine's ``top_k``).
        history: earlier turns, used for follow-up questions as in ``Engine.retrieve``.
    """

    def __init__(
        self, engine: Any, *, k: int | None = None, history: Sequence[Message] = (), **kwargs: Any
    ) -> None:
        kwargs.setdefault("callback_manager", CallbackManager([]))
        super().__init__(**kwargs)
        self._engine = engine
        self._k = k
        self._history = tuple(history)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self._engine.retrieve(query_bundle.query_str, k=self._k, history=self._history)
        return [NodeWithScore(node=_node(p), score=p.score) for p in passages]


def _node(passage: Any) -> TextNode:
    metadata = {
        "source": passage.source,
        "page": passage.page,
        "heading": passage.heading,
        "lang": passage.lang,
        "rank": passage.rank,
        "dense_score": passage.dense_score,
        "lexical_score": passage.lexical_score,
        "chunk_id": passage.chunk_id,
    }
    return TextNode(
        id_=passage.chunk_id,
        text=passage.text,
        metadata={k: v for k, v in metadata.items() if v not in (None, "")},
        excluded_llm_metadata_keys=_SCORE_KEYS,
        excluded_embed_metadata_keys=_SCORE_KEYS,
    )


class DocqaLLM(CustomLLM):
    """A docqa ``Generator`` (local transformers model or OpenAI-compatible server) for llama-index.

    Args:
        generator: the generator to wrap.
        max_new_tokens: longest answer.
    """

    max_new_tokens: int = 256
    _generator: Any = PrivateAttr()

    def __init__(self, generator: Generator, *, max_new_tokens: int = 256, **kwargs: Any) -> None:
        kwargs.setdefault("callback_manager", CallbackManager([]))
        super().__init__(max_new_tokens=max_new_tokens, **kwargs)
        self._generator = generator

    @classmethod
    def class_name(cls) -> str:
        return "DocqaLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self._generator.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            model_name=self._generator.name,
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._stream([Message("user", prompt)])))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = ""
        for piece in self._stream([Message("user", prompt)]):
            text += piece
            yield CompletionResponse(text=text, delta=piece)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = "".join(self._stream(_messages(messages)))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        text = ""
        for piece in self._stream(_messages(messages)):
            text += piece
            yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece)

    def _stream(self, messages: list[Message]):
        return self._generator.stream(messages, self.max_new_tokens)


def _messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """llama-index chat messages -> docqa messages (roles other than system/assistant -> user)."""
    roles = {MessageRole.SYSTEM: "system", MessageRole.ASSISTANT: "assistant"}
    return [Message(roles.get(m.role, "user"), m.content or "") for m in messages]


def as_query_engine(
    engine: Any,
    llm: Any = None,
    *,
    k: int | None = None,
    response_mode: str = "compact",
    streaming: bool = False,
) -> RetrieverQueryEngine:
    """A llama-index query engine over ``engine``'s index.

    Args:
        engine: an open ``rag.engine.Engine``.
        llm: any llama-index LLM; default ``DocqaLLM(engine.generator)``.
        k: passages per query.
        response_mode: llama-index response mode ("compact", "refine", "tree_summarize", ...).
        streaming: return streaming responses.
    """
    if llm is None:
        llm = DocqaLLM(engine.generator, max_new_tokens=engine.settings.max_new_tokens)
    callbacks = CallbackManager([])
    synthesizer = get_response_synthesizer(
        llm=llm,
        callback_manager=callbacks,
        prompt_helper=PromptHelper.from_llm_metadata(llm.metadata),
        chat_prompt_helper=ChatPromptHelper.from_llm_metadata(llm.metadata),
        response_mode=response_mode,
        streaming=streaming,
    )
    retriever = DocqaRetriever(engine, k=k, callback_manager=callbacks)
    return RetrieverQueryEngine(retriever, response_synthesizer=synthesizer, callback_manager=callbacks)
