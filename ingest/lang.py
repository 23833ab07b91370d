"""Language of a text: a section of a manual or a user's question.

Uses py3langid's offline model, restricted to the languages manuals are likely to be written in,
and a small stopword heuristic for questions too short for the model to be sure about. It does
not tell dialects apart and does not split mixed-language text: it names the dominant language.
"""

from __future__ import annotations

import functools
import re

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from ingest.errors import ModelError

LANGUAGES = ("en", "es", "fr", "de", "it", "pt")
"""Codes ``detect_language`` can return, besides "und"."""

_CONFIDENT = 0.7  # the model alone decides above this probability
_PLAUSIBLE = 0.5  # below this, without a heuristic hint, the answer is "und"
_SAMPLE_CHARS = 5000  # the model's answer is stable long before this; keeps big files cheap
_WORD = re.compile(r"[^\W\d_]+")

# Words frequent in short questions and rare in the other languages of LANGUAGES.
_STOPWORDS = {
    "en": {
        "the",
        "how",
        "what",
        "is",
        "do",
        "does",
        "i",
        "can",
        "which",
        "why",
        "where",
        "when",
        "of",
        "to",
        "and",
        "my",
        "with",
        "it",
        "are",
        "on",
    },
    "es": {
        "el",
        "la",
        "los",
        "las",
        "qué",
        "cómo",
        "cuál",
        "cuándo",
        "dónde",
        "por",
        "para",
        "es",
        "un",
        "una",
        "del",
        "con",
        "mi",
        "puedo",
        "se",
        "y",
        "como",
        "que",
        "cual",
    },
    "fr": {
        "le",
        "les",
        "comment",
        "quel",
        "quelle",
        "est",
        "une",
        "des",
        "du",
        "je",
        "pour",
        "avec",
        "mon",
        "et",
        "qu'est-ce",
    },
    "de": {
        "der",
        "die",
        "das",
        "wie",
        "was",
        "ist",
        "ich",
        "ein",
        "eine",
        "mit",
        "und",
        "für",
        "nicht",
        "kann",
    },
    "it": {
        "il",
        "lo",
        "gli",
        "come",
        "cosa",
        "che",
        "è",
        "di",
        "una",
        "per",
        "con",
        "posso",
        "perché",
        "della",
    },
    "pt": {
        "o",
        "os",
        "as",
        "como",
        "que",
        "é",
        "um",
        "uma",
        "do",
        "da",
        "para",
        "com",
        "eu",
        "posso",
        "não",
        "meu",
    },
}
_SPANISH_MARKS = set("¿¡ñÑ")


@functools.lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """Load the model once (about half a second) and restrict it to ``LANGUAGES``.

    Raises:
        ModelError: the temporary folder, where py3langid unpacks its model, is full or read-only.
    """
    try:
        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    except OSError as err:  # else a full temporary folder stops ingestion with a traceback
        raise ModelError(
            f"cannot unpack the language model into the temporary folder ({err}); "
            "free some space there or set TMPDIR to another folder"
        ) from None
    identifier.set_languages(list(LANGUAGES))
    return identifier


def _heuristic(text: str) -> str | None:
    """Guess from Spanish punctuation and stopwords; None when there is no clear winner.

    >>> _heuristic("¿Qué es SQ1?")
    'es'
    """
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {lang: sum(w in stops for w in words) for lang, stops in _STOPWORDS.items()}
    scores["es"] += 2 * sum(ch in _SPANISH_MARKS for ch in text)
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best, runner_up = ranked[0], ranked[1]
    return best[0] if best[1] > 0 and best[1] > runner_up[1] else None


def detect_language(text: str) -> str:
    """Return the ISO 639-1 code of ``text``'s language, or "und" when it cannot tell.

    Args:
        text: any text; only its first few thousand characters are looked at.

    Returns:
        One of ``LANGUAGES``, or "und" for empty text, text without words (numbers, code
        symbols) and single words the model is unsure about.

    >>> detect_language("¿Cómo mido un voltaje?")
    'es'
    """
    sample = text[:_SAMPLE_CHARS].strip()
    if len(_WORD.findall(sample)) == 0 or sum(ch.isalpha() for ch in sample) < 2:
        return "und"
    lang, probability = _identifier().classify(sample)
    if probability >= _CONFIDENT:
        return lang
    hint = _heuristic(sample)
    if hint is not None:
        return hint
    return lang if probability >= _PLAUSIBLE else "und"
