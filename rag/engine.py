"""The query engine, docqa's public Python API: a question -> a grounded, cited ``Answer``.

>>> engine = open_engine(load_settings())                       # doctest: +SKIP
>>> answer = engine.ask("How do I measure a voltage?")           # doctest: +SKIP
>>> for item in engine.stream("¿Cómo mido un voltaje?"):         # doctest: +SKIP
...     print(item if isinstance(item, str) else item.citations)

``Engine`` holds the settings, the open index, the embedder and the generator (loaded on first
use, so retrieval-only callers never pay for it). Answering is: retrieve (scoped, with the
conversation for follow-ups) -> refuse without the model when nothing is relevant enough ->
prompt -> the refusal decision on the signals measured before decoding (``rag.refusal``) ->
stream, kept from the refusal sentence once the decision said "answer" -> resolve citations (a
refusal the model writes anyway after an "answer" decision becomes a cited quote of the passage,
``rag.extractive``). The
engine does not build indexes (``ingest.pipeline`` does) and keeps no conversation state: callers
pass the history in. The module is over 300 lines because those steps are one class's methods,
each short; the decisions themselves live in ``rag.refusal``, ``rag.prompt`` and ``rag.answer``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ingest.embed import Embedder
from ingest.embedders import check_embedder, embedder_name, load_embedder
from ingest.errors import EmptyQuestion
from ingest.lang import detect_language
from ingest.records import Answer, Message, Passage, Scope, Timings
from ingest.settings import Settings
from ingest.store_protocol import Store
from rag.answer import build_answer, cite_passage, quoted_answer
from rag.extractive import extract
from rag.generate import Generator, accepts_avoid, load_generator
from rag.prompt import build_prompt, fit_passages
from rag.refusal import (
    RefusalModel,
    RefusalSignals,
    load_refusal_model,
    min_relevance_for,
    overlap,
    refusal,
    relevance,
)
from rag.retrieve import candidates_for, dense_weight_for, retrieve, search_query

PROMPT_OVERHEAD_TOKENS = 200  # rules, question and chat markup around the passages
FOLLOW_UP_MARGIN = 0.02  # cosine a conversation-aware search must gain to be used
CHAT_MARKUP_TOKENS = 5  # per message: "<|im_start|>role\n ... <|im_end|>\n" in Qwen's template
WARM_UP_LANGUAGES = ("en", "es")  # the languages whose prompt prefix Engine.warm_up prefills
WARM_UP_QUESTION = "How do I start?"
FITTED = "fitted"  # Engine(refusal_model=FITTED): the decision fitted for its embedder and generator


class Engine:
    """Answers questions from one index. Build it with ``open_engine``; close it when done.

    Args:
        settings: the frozen settings (top_k, weights, thresholds, budgets, generator choice).
        index: the store to answer from (``ingest.store_protocol.Store``; ``open_engine`` opens
            the index folder's ``ingest.store.Index``).
        embedder: the embedder the index was built with.
        generator: a ready generator, or None to load ``settings.generator`` on first use.
    """

    def __init__(
        self,
        settings: Settings,
        index: Store,
        embedder: Embedder,
        generator: Generator | None = None,
        *,
        refusal_model: RefusalModel | str | None = FITTED,
    ) -> None:
        self.settings = settings
        self.index = index
        self.embedder = embedder
        self._generator = generator
        self._refusal_model = refusal_model

    @property
    def refusal_model(self) -> RefusalModel | None:
        """The "not in the documents" decision: the one given, or the fitted one for this
        embedder and generator (``rag.refusal.load_refusal_model``), or None."""
        if self._refusal_model == FITTED:  # the generator's name without loading it
            name = self._generator.name if self._generator is not None else Path(self.settings.generator).name
            self._refusal_model = load_refusal_model(self.embedder.name, name)
        return self._refusal_model if isinstance(self._refusal_model, RefusalModel) else None

    @property
    def generator(self) -> Generator:
        """The generator, loaded the first time it is needed."""
        if self._generator is None:
            self._generator = load_generator(self.settings)
        return self._generator

    def warm_up(self, languages: Sequence[str] = WARM_UP_LANGUAGES, *, search: bool = True) -> float:
        """Do now what the first question would otherwise pay for; returns the seconds it took.

        The generator is loaded and the prompt's fixed part (the rules and worked examples) is
        prefilled in each language: the refusal probe runs on a prompt without passages, and the
        generator keeps what it prefilled (the torch runtime's prefix cache, llama.cpp's prompt
        snapshots), which every later prompt in that language starts with. A generator without
        the probe (an OpenAI-compatible server) has nothing to keep. With ``search``, one search
        also loads the language detector, the embedder's session and the index's files.
        """
        start = time.perf_counter()
        probe = getattr(self.generator, "continuation_probability", None)
        if probe is not None:
            for lang in languages:
                _, messages = self.prompt(WARM_UP_QUESTION, [], language=lang)
                probe(messages, refusal(lang))
        if search:
            self.retrieve(WARM_UP_QUESTION, k=1)
        return time.perf_counter() - start

    def retrieve(
        self,
        question: str,
        *,
        k: int | None = None,
        history: Sequence[Message] = (),
        scope: Scope | None = None,
    ) -> list[Passage]:
        """The best ``k`` (default ``settings.top_k``) passages for ``question``, best first.

        With a conversation, the question is also searched prefixed by the previous user turn,
        and those passages win when their best cosine is higher by ``FOLLOW_UP_MARGIN``: a
        follow-up ("what is its range?") finds its topic, a change of topic keeps its own
        (bench/bench_followup.py). ``scope``: only passages of these documents, folders and
        languages (``rag.retrieve.retrieve``; EmptyScope when it matches nothing).
        """
        question = check_question(question)
        lang = self._language(question, history)
        passages = self._search(question, k, lang, scope)
        query = search_query(question, history)
        if query != question:
            joined = self._search(query, k, lang, scope)
            if relevance(joined) > relevance(passages) + FOLLOW_UP_MARGIN:
                return joined
        return passages

    def _search(self, query: str, k: int | None, lang: str, scope: Scope | None) -> list[Passage]:
        k = k or self.settings.top_k
        # Fusion scales each search's scores over its candidates, so a longer list (docqa eval's
        # top 10) gets the candidates of the answer's own search (top_k) whenever they cover it:
        # its head is then the passage the answer was shown.
        candidates = max(candidates_for(self.settings.top_k), k)
        return retrieve(
            query,
            self.index,
            self.embedder,
            k=k,
            candidates=candidates,
            dense_weight=dense_weight_for(self.settings.dense_weight, self.embedder.name),
            lang=lang,
            lang_bonus=self.settings.same_language_bonus,
            scope=scope,
        )

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Message] = (),
        k: int | None = None,
        language: str | None = None,
        scope: Scope | None = None,
    ) -> Answer:
        """Answer ``question`` (see ``stream``) and return only the final ``Answer``."""
        answer = None
        for item in self.stream(question, history=history, k=k, language=language, scope=scope):
            if isinstance(item, Answer):
                answer = item
        if answer is None:  # stream always ends with an Answer; this guards a broken generator
            raise RuntimeError("the answer stream ended without an Answer")
        return answer

    def stream(
        self,
        question: str,
        *,
        history: Sequence[Message] = (),
        k: int | None = None,
        language: str | None = None,
        scope: Scope | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as generated, then the final ``Answer`` (last item).

        The pieces are the model's raw text; the final ``Answer.text`` has invalid citation
        markers removed, so a UI should replace the streamed text with it.

        Args:
            question: the user's question.
            history: the conversation so far (user and assistant messages, oldest first).
            k: passages to retrieve (default ``settings.top_k``).
            language: answer language code; default the question's (``settings.answer_language``
                when it is not "auto").
            scope: answer only from these documents, folders and languages (None: the whole
                index); the refusal decision sees the scoped passages. EmptyScope when it
                matches nothing.
        """
        start = time.perf_counter()
        question = check_question(question)
        lang = language or self._language(question, history)
        passages = self.retrieve(question, k=k, history=history, scope=scope)
        t_retrieve = time.perf_counter() - start
        if relevance(passages) < self._min_relevance():
            yield from self._refuse(question, passages, lang, start, Timings(retrieve=t_retrieve))
            return
        generator = self.generator
        t_prompt_start = time.perf_counter()
        shown, messages = self.prompt(question, passages, history=history, language=lang)
        prompt_tokens = sum(generator.count_tokens(m.content) + CHAT_MARKUP_TOKENS for m in messages)
        t_prompt = time.perf_counter() - t_prompt_start
        signals = self.signals(question, passages, shown, messages, lang)
        score = signals.probability
        if self.refuses(signals):
            timings = Timings(retrieve=t_retrieve, prompt=t_prompt, prompt_tokens=prompt_tokens)
            yield from self._refuse(question, passages, lang, start, timings, score)
            return
        pieces: list[str] = []
        first_token = None
        # A decision that weighed the model's own doubt has said "answer": the model is kept from
        # writing the refusal sentence anyway (Qwen 0.5B did for nearly every Spanish FAQ question).
        decided = signals.probability is not None and accepts_avoid(generator)
        options = {"avoid": refusal(lang)} if decided else {}
        for piece in generator.stream(messages, self.settings.max_new_tokens, **options):
            if first_token is None:
                first_token = time.perf_counter() - start
            pieces.append(piece)
            yield piece
        raw = "".join(pieces)
        timings = Timings(
            retrieve=t_retrieve,
            prompt=t_prompt,
            first_token=first_token,
            total=time.perf_counter() - start,
            prompt_tokens=prompt_tokens,
            completion_tokens=generator.count_tokens(raw),
        )
        answer = build_answer(question, raw, shown, passages=passages, lang=lang, timings=timings)
        if answer.unsupported and answer.text.strip():
            answer = self._cite_by_meaning(answer, shown)
        if answer.refused and signals.probability is not None:
            # The decision weighed the model's doubt and said "answer"; the model refused in its
            # own words anyway. The decision is the measured one: quote the passage instead.
            quote = extract(question, shown)
            if quote is not None:
                answer = quoted_answer(question, quote, shown, passages=passages, lang=lang, timings=timings)
        yield dataclasses.replace(answer, refusal_score=score)

    def _cite_by_meaning(self, answer: Answer, shown: Sequence[Passage]) -> Answer:
        """An uncited answer cites the shown passage closest to it in meaning, when that passage
        is as close to the answer as retrieval's gate asks a relevant passage to be to a question.

        Word matching (``rag.answer.attribute``) cannot credit a translation: a Spanish answer
        from an English manual shares no words with it. The answer is embedded as a query and
        the passages as documents, the way retrieval compares a question with a chunk. An embedder
        without a calibrated gate (0) gets no citation by meaning: nothing says how close is close.
        """
        gate = self._min_relevance()
        if not shown or gate <= 0:
            return answer
        vectors = self.embedder.embed_documents([p.text for p in shown])
        cosines = vectors @ self.embedder.embed_queries([answer.text])[0]
        best = int(cosines.argmax())
        if float(cosines[best]) < gate:
            return answer
        return cite_passage(answer, best + 1, shown)

    def signals(
        self,
        question: str,
        passages: Sequence[Passage],
        shown: Sequence[Passage],
        messages: Sequence[Message],
        lang: str,
    ) -> RefusalSignals:
        """What the refusal decision looks at, measured before any answer is decoded.

        The generator's probability of the refusal sentence is asked for only when a decision
        uses it (it costs the refusal sentence's few tokens on top of the prompt's prefill).
        """
        probe = getattr(self.generator, "continuation_probability", None)
        threshold = self.settings.refusal_probability
        wanted = 0 <= threshold < 1 or (threshold < 0 and self.refusal_model is not None)
        probability = probe(messages, refusal(lang)) if probe is not None and wanted else None
        return RefusalSignals(relevance(passages), overlap(question, shown), probability, lang)

    def refuses(self, signals: RefusalSignals) -> bool:
        """Whether to answer "not in the documents" without decoding (``rag.refusal``).

        ``settings.refusal_probability`` (0 to 1), when set, replaces the fitted decision: the
        refusal sentence's probability at or above it refuses.
        """
        if signals.relevance < self._min_relevance():
            return True
        threshold = self.settings.refusal_probability
        if threshold >= 0:  # 1: the model's gate is off
            return signals.probability is not None and threshold < 1 and signals.probability >= threshold
        model = self.refusal_model
        return model is not None and model.unanswerable(signals) >= model.threshold

    def _min_relevance(self) -> float:
        return min_relevance_for(self.settings, self.embedder.name, self.refusal_model)

    def prompt(
        self,
        question: str,
        passages: Sequence[Passage],
        *,
        history: Sequence[Message] = (),
        language: str = "en",
    ) -> tuple[list[Passage], list[Message]]:
        """The passages as shown to the generator (cut to the budget) and its chat messages."""
        generator = self.generator
        budget = min(
            self.settings.context_tokens,
            generator.context_window - self.settings.max_new_tokens - PROMPT_OVERHEAD_TOKENS,
        )
        shown = fit_passages(passages, budget, generator.count_tokens, question)
        messages = build_prompt(
            question,
            shown,
            history=history,
            language=language,
            budget_tokens=budget,
            count_tokens=generator.count_tokens,
        )
        return shown, messages

    def _refuse(
        self,
        question: str,
        passages: Sequence[Passage],
        lang: str,
        start: float,
        timings: Timings,
        score: float | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the refusal sentence, then its ``Answer`` (with the passages that were found)."""
        text = refusal(lang)
        yield text
        total = time.perf_counter() - start
        timings = dataclasses.replace(timings, first_token=total, total=total)
        yield Answer(
            question,
            text,
            refused=True,
            passages=tuple(passages),
            lang=lang,
            timings=timings,
            refusal_score=score,
        )

    def close(self) -> None:
        """Close the index. The engine cannot answer afterwards."""
        self.index.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _language(self, question: str, history: Sequence[Message]) -> str:
        """The answer language: fixed by the settings, else the question's (or the last turn's)."""
        if self.settings.answer_language != "auto":
            return self.settings.answer_language
        lang = detect_language(question)
        for message in reversed(history):  # "und" for a one-word follow-up: keep the conversation's
            if lang != "und":
                break
            if message.role == "user":
                lang = detect_language(message.content)
        return lang if lang != "und" else "en"


def open_engine(
    settings: Settings, *, embedder: Embedder | None = None, generator: Generator | None = None
) -> Engine:
    """Open ``settings.index_dir`` for answering.

    Raises IndexNotFound when there is no index, EmbedderMismatch when it was built with another
    embedder than ``embedder`` (or ``settings.embedder``). The generator is not loaded here.
    """
    from ingest.stores import open_store

    index_dir = Path(settings.index_dir)
    index = open_store(settings, index_dir)  # IndexNotFound before a model is loaded
    try:
        if embedder is None:  # checked before loading the model, then once it is loaded
            check_embedder(index_dir, index.embedder, index.dim, name=embedder_name(settings))
            embedder = load_embedder(settings)
        check_embedder(index_dir, index.embedder, index.dim, name=embedder.name)
    except BaseException:
        index.close()
        raise
    return Engine(settings, index, embedder, generator)


def ask(question: str, engine: Engine, history: Sequence[Message] = (), **options) -> Answer:
    """``engine.ask(question, history=history, **options)``."""
    return engine.ask(question, history=history, **options)


def stream(
    question: str, engine: Engine, history: Sequence[Message] = (), **options
) -> Iterator[str | Answer]:
    """``engine.stream(question, history=history, **options)``."""
    return engine.stream(question, history=history, **options)


def check_question(question: str) -> str:
    """``question`` without surrounding blanks; EmptyQuestion if nothing is left."""
    if not question or not question.strip():
        raise EmptyQuestion('the question is empty: ask something, e.g. docqa ask "How do I ...?"')
    return question.strip()
