"""Word helpers shared by retrieval, the prompt, citations and refusal.

Text is compared folded (lower case, accents removed, typographic apostrophes made plain) and
reduced to content words: the words and numbers that carry the meaning of a question or a
passage, without the English and Spanish function words. This module has no state and imports
nothing of docqa's.
"""

from __future__ import annotations

import re
import unicodedata

_STOPWORD_TEXT = (  # folded (no accents), as content_words compares them
    "the and for are is was with this that from can you your its it's not but have has into "
    "which what when where how why who use used using also then than there their they them "
    "el la los las de del que en un una por para con se es son su sus al lo como mas pero "
    "si ya cuando donde cual it to of in on at by an as or be do if no so we my up le les mi tu "
    "does did should could would will about some any all been were may might must very just"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]{2,}")


def fold(text: str) -> str:
    """Lower case without accents: ``"Encontré"`` -> ``"encontre"``.

    >>> fold("Encontré’s")
    "encontre's"
    """
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def content_words(text: str) -> set[str]:
    """Content words and numbers of ``text``, folded: stopwords and one-letter words left out.

    >>> sorted(content_words("¿Qué voltaje da la pila de limón? 0,9 V"))
    ['0,9', 'da', 'limon', 'pila', 'voltaje']
    """
    return {t for t in _TOKEN.findall(fold(text)) if t not in STOPWORDS}
