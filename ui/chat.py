"""The chat view: questions in, streamed answers with numbered, openable citations out.

Each turn keeps the question and the engine's ``Answer``; follow-up questions send the last turns
to the engine as ``Message`` history. The answer's text is shown piece by piece as the generator
writes it, then replaced by the final text (whose invalid citation markers the engine removed).
A scope picked in the sidebar (``ui.scope_panel``) is passed to the engine with every question of
the conversation and named above it; a scope that matches nothing is a warning that says what
would. A refusal is shown as such, with the closest passages. Answers and questions go through
``ui.markdown.safe_markdown`` (no images or links from a model's or a document's text). Problems
(empty question, no index, a model that does not load) are shown as messages. This module does not
build prompts or retrieve: the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ingest.errors import DocqaError, EmptyScope, IndexNotFound
from ingest.records import Answer, Message, Scope
from ingest.settings import Settings
from rag.engine import Engine
from ui.feedback import feedback_path, record_feedback
from ui.markdown import safe_markdown
from ui.resources import get_engine, get_generator
from ui.scope_panel import describe
from ui.sources import render_citations, render_passages

TURNS_KEY = "docqa_turns"
VOTES_KEY = "docqa_votes"
HISTORY_TURNS = 3  # follow-ups see this many earlier turns: enough for "and in Spanish?"
EMPTY_QUESTION = "Type a question first, e.g. “How do I measure a voltage?” or “¿Cómo mido un voltaje?”"


def missing_index_message(index_dir: Path) -> str:
    """What to do when there is no index yet."""
    return (
        f"No documents are indexed yet (no index at `{index_dir}`). Run `docqa ingest FOLDER` "
        "in a terminal, or upload documents in the **Documents** view."
    )


@dataclass(frozen=True, slots=True)
class Turn:
    """One question and its answer, with the generator that wrote it."""

    question: str
    answer: Answer
    generator: str


def history_messages(turns: list[Turn], limit: int = HISTORY_TURNS) -> tuple[Message, ...]:
    """The last ``limit`` turns as user/assistant messages, oldest first."""
    messages: list[Message] = []
    for turn in turns[-limit:]:
        messages += [Message("user", turn.question), Message("assistant", turn.answer.text)]
    return tuple(messages)


def _locator(engine: Engine | None):
    def locate(source: str) -> Path | None:
        return engine.index.file_path(source) if engine is not None else None

    return locate


def _render_feedback(i: int, turn: Turn, settings: Settings) -> None:
    votes = st.session_state.setdefault(VOTES_KEY, {})
    if i in votes:
        st.caption("Thank you: your feedback is saved.")
        return
    rating = st.feedback("thumbs", key=f"docqa_vote_{i}")
    if rating is None:
        return
    with st.form(f"docqa_vote_form_{i}", border=False):
        comment = st.text_input("Comment (optional)", key=f"docqa_vote_comment_{i}")
        if st.form_submit_button("Send feedback"):
            path = feedback_path(settings.index_dir)
            votes[i] = record_feedback(
                path, turn.answer, 1 if rating == 1 else -1, comment, generator=turn.generator
            )
            st.rerun()


def _render_turn(i: int, turn: Turn, settings: Settings, engine: Engine | None, latest: bool) -> None:
    with st.chat_message("user"):
        st.markdown(safe_markdown(turn.question))
    with st.chat_message("assistant"):
        answer = turn.answer
        if answer.refused:
            st.warning(safe_markdown(answer.text), icon=":material/search_off:")
            if answer.refusal_score is not None:
                st.caption("These passages look related, but the model judged that they do not answer it.")
            render_passages(answer.passages, i, _locator(engine))
        else:
            st.markdown(safe_markdown(answer.text))
            if answer.extracted:
                st.caption("Quoted from the passage: the model did not put the answer in its own words.")
            if answer.unsupported:
                st.caption(":warning: The answer cites no passage: check it against these passages.")
                render_passages(answer.passages, i, _locator(engine), open_first=latest, title="")
            render_citations(answer, i, _locator(engine), open_first=latest)
        by = turn.generator if answer.timings.prompt_tokens else "no model needed"
        st.caption(f"{by} · {answer.timings.total:.1f} s · answer in {answer.lang}")
        _render_feedback(i, turn, settings)


def _stream_answer(
    question: str, settings: Settings, history: tuple[Message, ...], engine: Engine, scope: Scope | None
) -> Turn | None:
    """Ask the engine and show the answer as it streams; None (after a message) on failure."""
    try:
        generator = get_generator(settings)  # cached; shows its own spinner when it loads
    except DocqaError as err:
        st.error(f"The language model could not be loaded: {err}")
        passages = engine.retrieve(question, k=settings.top_k, history=history, scope=scope)
        render_passages(passages, -1, _locator(engine))
        return None
    engine = get_engine(settings, generator)
    language = None if settings.answer_language == "auto" else settings.answer_language
    box = st.empty()
    box.markdown("_Searching the manuals…_")
    text, answer = "", None
    try:
        for item in engine.stream(
            question, history=history, k=settings.top_k, language=language, scope=scope
        ):
            if isinstance(item, Answer):
                answer = item
            else:
                text += item
                box.markdown(safe_markdown(text) + " ▌")
    except EmptyScope as err:  # raised before any text: the scope is the problem, not the answer
        box.empty()
        st.warning(safe_markdown(str(err)), icon=":material/search_off:")
        return None
    except DocqaError as err:  # e.g. the server went away mid-answer
        box.markdown(safe_markdown(text))
        st.error(f"The answer could not be finished: {err}")
        return None
    if answer is None:
        st.error("The engine returned no answer; try again.")
        return None
    box.markdown(safe_markdown(answer.text))
    return Turn(question, answer, getattr(generator, "name", settings.generator))


def new_conversation() -> None:
    """Forget the turns and votes of this session's conversation."""
    st.session_state[TURNS_KEY] = []
    st.session_state[VOTES_KEY] = {}


def render_chat(settings: Settings, scope: Scope | None = None) -> None:
    """Draw the conversation and answer a new question if one was asked, from ``scope`` only
    (None: the whole index)."""
    st.title("Ask the manuals")
    if scope:
        st.caption(safe_markdown(describe(scope)))
    turns: list[Turn] = st.session_state.setdefault(TURNS_KEY, [])
    try:
        engine = get_engine(settings)
    except IndexNotFound:
        st.info(missing_index_message(settings.index_dir), icon=":material/info:")
        st.chat_input("Ask a question about your manuals", disabled=True)
        return
    for i, turn in enumerate(turns):
        _render_turn(i, turn, settings, engine, latest=i == len(turns) - 1)
    if turns and st.button("New conversation", icon=":material/refresh:"):
        new_conversation()
        st.rerun()
    question = st.chat_input("Ask a question about your manuals (English or español)")
    if question is None:
        return
    if not question.strip():
        st.warning(EMPTY_QUESTION)
        return
    with st.chat_message("user"):
        st.markdown(safe_markdown(question))
    with st.chat_message("assistant"):
        turn = _stream_answer(question.strip(), settings, history_messages(turns), engine, scope)
    if turn is not None:
        turns.append(turn)
        st.rerun()
