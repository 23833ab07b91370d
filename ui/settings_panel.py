"""The sidebar: which view, and the settings a user may change without restarting the app.

The user can set the number of passages, the generator (the bundled default, the bundled quality
model when it is fetched, or an OpenAI-compatible server with its base URL and model; a base URL typed here
is sent no API key, which belongs to the configured server only) and the answer language (auto,
English, Spanish). The runtime a local generator runs on (``generator_runtime``) is shown, not
changed. The result is a new frozen ``Settings``; nothing global is changed, so each browser
session has its own choices. The sidebar also offers the feedback votes as a question set for
``docqa eval``.
"""

from __future__ import annotations

import streamlit as st

from ingest import registry
from ingest.errors import ConfigError
from ingest.settings import Settings
from rag.generate import resolve_runtime
from ui.feedback import export_questions, feedback_path, list_feedback

DEFAULT_GENERATOR = "qwen2.5-coder-0.5b-instruct"
QUALITY_GENERATOR = "qwen2.5-coder-1.5b-instruct"
OPENAI = "openai"
VIEWS = ("Chat", "Documents")
_LANGUAGES = {"auto": "Auto (the question's)", "en": "English", "es": "Español"}


def generator_choices(base: Settings) -> dict[str, str]:
    """Generators to offer, value -> label: the bundled ones that are fetched, the server, and
    whatever the configuration names.
    """
    choices = {}
    for name, label in ((DEFAULT_GENERATOR, "bundled, fast"), (QUALITY_GENERATOR, "bundled, better, slower")):
        if registry.is_fetched(name, base.models_dir) or base.generator == name:
            choices[name] = f"{name} ({label})"
    if base.generator not in choices and base.generator != OPENAI:
        choices[base.generator] = f"{base.generator} (configured)"
    choices[OPENAI] = "OpenAI-compatible server (vLLM, Ollama, llama.cpp…)"
    return choices


def _folder(generator: str, base: Settings) -> str:
    """The folder a bundled name or a local path points to (it need not exist)."""
    if generator in registry.BUNDLED:
        return str(registry.model_path(generator, base.models_dir))
    return generator


def runtime_label(runtime: str) -> str:
    """How a local generator runs, in words.

    >>> runtime_label("llama.cpp")
    'llama.cpp, 4-bit GGUF'
    """
    return {"torch": "torch, fp32", "llama.cpp": "llama.cpp, 4-bit GGUF"}.get(runtime, runtime)


def render_sidebar(base: Settings) -> tuple[str, Settings]:
    """Draw the view switch and the settings; return the chosen view and the session's settings.

    A value the settings reject (e.g. an empty server URL) is shown as an error and the
    configured settings are kept.
    """
    sidebar = st.sidebar
    view = sidebar.radio("View", VIEWS, key="view", horizontal=True)
    sidebar.subheader("Answering")
    top_k = sidebar.slider("Passages per answer", 1, 20, min(base.top_k, 20), key="top_k")
    language = sidebar.radio(
        "Answer language",
        list(_LANGUAGES),
        index=list(_LANGUAGES).index(base.answer_language) if base.answer_language in _LANGUAGES else 0,
        format_func=_LANGUAGES.get,
        key="answer_language",
    )
    choices = generator_choices(base)
    generator = sidebar.selectbox(
        "Generator",
        list(choices),
        index=list(choices).index(base.generator),
        format_func=choices.get,
        key="generator",
    )
    changes = {"top_k": top_k, "answer_language": language, "generator": generator}
    if generator != OPENAI:
        runtime = resolve_runtime(base.generator_runtime, _folder(generator, base))
        sidebar.caption(f"Runtime: {runtime_label(runtime)} (setting `generator_runtime`)")
    if QUALITY_GENERATOR not in choices:
        sidebar.caption(f"Better answers: `docqa models fetch {QUALITY_GENERATOR}`, then reload.")
    if generator == OPENAI:
        changes["openai_base_url"] = sidebar.text_input(
            "Server base URL", base.openai_base_url, key="openai_base_url"
        ).strip()
        changes["openai_model"] = sidebar.text_input(
            "Model (empty: the server's first)", base.openai_model, key="openai_model"
        ).strip()
        if not changes["openai_base_url"].startswith(("http://", "https://")):
            sidebar.error("The server base URL must start with http:// or https://")
            changes["openai_base_url"] = base.openai_base_url
        if changes["openai_base_url"].rstrip("/") != base.openai_base_url.rstrip("/"):
            # The operator's key belongs to the operator's server: a URL typed here gets none.
            changes["openai_api_key_env"] = ""
            sidebar.caption("No API key is sent to a server chosen here; the configured one gets it.")
    try:
        settings = base.replace(**changes)
    except ConfigError as err:
        sidebar.error(str(err))
        settings = base
    sidebar.caption(f"Index: `{settings.index_dir}`")
    _feedback_export(settings)
    return view, settings


def _feedback_export(settings: Settings) -> None:
    """The votes so far, downloadable as a question set for ``docqa eval``."""
    path = feedback_path(settings.index_dir)
    votes = list_feedback(path)
    if not votes:
        return
    liked = sum(v.rating > 0 for v in votes)
    st.sidebar.subheader("Feedback")
    st.sidebar.caption(f"{liked} helpful, {len(votes) - liked} not helpful")
    st.sidebar.download_button(
        "Export as questions for docqa eval",
        export_questions(path),
        file_name="feedback-questions.jsonl",
        mime="application/jsonl",
        icon=":material/download:",
        help="The helpful answers' questions, with their citations as gold passages (JSONL).",
    )
