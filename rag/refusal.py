"""Every "not in the documents" decision, in one place.

- The refusal sentences (``REFUSALS``, ``refusal``) the prompt tells the model to use and the
  engine answers with.
- Recognising a refusal in the model's own text (``is_refusal``).
- Retrieval's gate (``relevance``, ``min_relevance_for``): the best passage's dense cosine under a
  per-embedder threshold means nothing relevant was found (another product's question), refused
  without the model.
- The model's gate (``refusal_threshold``), explained below.

Two tests guard an answer. The first, before the model, is retrieval's: the best passage's dense
cosine under ``MIN_RELEVANCE`` (another product's question). The second is here:
questions about the right product that the manual does not answer (its price, a Bluetooth link)
retrieve relevant-looking passages, and a small model then writes a plausible answer rather than
the refusal sentence it was told to use. Its doubt still shows in its probability of starting
with that sentence, which the generator gives for the cost of a few tokens
(``TransformersGenerator.continuation_probability``): at or above a threshold calibrated per
model and language, the engine refuses without decoding.

Calibrated with bench/calibrate_refusal.py (results and plot in bench/results/): 20 in-domain
unanswerable and 20 answerable questions written for it plus half of corpus/questions.jsonl's
answerable ones; the threshold maximises (refused + kept) / 2 per language. Qwen2.5-Coder-0.5B:
English 0.0324 keeps 15/17 answerable and refuses 8/10 unanswerable (retrieval's gate alone:
17/17, 0/10); on the held-out half 7/7 and 4/4. Spanish 0.256: 14/16 and 7/10; held out 5/6
and 3/4 (gate alone 6/6, 1/4). Rechecked on the index without tables of contents: the rule's own
choice (0.0328 / 0.2511) gives the same counts. A refusal still lists the closest passages, so a wrong refusal
costs the reader less than an invented answer; ``refusal_probability = 1`` turns this off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingest.records import Passage
from ingest.settings import Settings
from rag.text import fold

REFUSALS = {
    "en": "I could not find this in the documents.",
    "es": "No encontré esto en los documentos.",
}
# Refusals, matched on lower-cased text without accents.
_REFUSAL_EXACT = ("i could not find this in the documents", "no encontre esto en los documentos")
_REFUSAL_VARIANTS = re.compile(
    r"(could not|couldn't|cannot|can't|can not|unable to|did not|didn't) (find|answer|determine)"
    r"|(is|are) not (mentioned|provided|found|stated|specified|included) in the (passages|documents)"
    r"|(passages|documents|context) (do|does) not (contain|mention|provide|say|include|specify)"
    r"|no (information|mention) (about|on|of|regarding)"
    r"|no (encontre|pude encontrar|puedo responder|se encuentra|se menciona|hay informacion)"
    r"|(pasajes|documentos) no (contienen|mencionan|incluyen|dicen|proporcionan)"
)

# Refusal thresholds on the best passage's dense cosine, per embedder (bench/tune_fusion.py and
# bench/check_refusal.py): the highest that keeps every answerable question of the sample manuals
# and >= 95% of the dev set's (Gemma 0.35: 98.0% kept, 74.9% of other products' questions refused;
# MiniLM 0.30: 97.4% / 71.5%). Cosine scales differ between models, so an unknown one gets 0.
MIN_RELEVANCE = {"embeddinggemma-300m": 0.35, "all-minilm-l6-v2": 0.30}

# Refusal-sentence probability at or above which the engine refuses, per generator and language.
# Languages differ: Spanish answers often start with "No", the first token of its refusal.
REFUSAL_PROBABILITY: dict[str, dict[str, float]] = {
    "qwen2.5-coder-0.5b-instruct": {"en": 0.0324, "es": 0.256},
}
NOT_CALIBRATED = 1.0  # only the model's own refusal counts


def refusal_threshold(settings: Settings, generator_name: str, language: str) -> float:
    """The refusal-probability threshold for ``generator_name`` answering in ``language``.

    ``settings.refusal_probability`` when it is set (0 to 1); otherwise the calibrated value, the
    highest of the model's calibrated languages for another language (the fewest refusals), and
    ``NOT_CALIBRATED`` for a model without calibration.
    """
    if settings.refusal_probability >= 0:
        return settings.refusal_probability
    table = REFUSAL_PROBABILITY.get(generator_name)
    if not table:
        return NOT_CALIBRATED
    return table.get(language, max(table.values()))


def refusal(language: str) -> str:
    """The refusal sentence in ``language`` (English for languages without one).

    >>> refusal("es")
    'No encontré esto en los documentos.'
    """
    return REFUSALS.get(language, REFUSALS["en"])


def is_refusal(text: str) -> bool:
    """Whether ``text`` says the documents do not answer (English or Spanish).

    >>> is_refusal("No encontré esto en los documentos.")
    True
    """
    folded = fold(text)
    return any(s in folded for s in _REFUSAL_EXACT) or bool(_REFUSAL_VARIANTS.search(folded))


def relevance(passages: Sequence[Passage]) -> float:
    """An absolute relevance for retrieval's gate: the best dense cosine, 0 when none.

    Fused scores are relative to the question's own candidates (the best is always near 1), so
    they cannot tell "nothing relevant" from "something relevant"; the cosine can.
    """
    return max((p.dense_score for p in passages if p.dense_score is not None), default=0.0)


def min_relevance_for(settings: Settings, embedder_name: str) -> float:
    """Retrieval's gate: ``settings.min_relevance``, or the embedder's calibrated one if negative."""
    if settings.min_relevance >= 0:
        return settings.min_relevance
    # "embeddinggemma-300m+onnx-int8" gets the fp32 model's value: its ranking matches fp32 within
    # 0.1 % nDCG@10 (bench/bench_embed_backends.py), but the threshold was not re-measured on it.
    return MIN_RELEVANCE.get(embedder_name, MIN_RELEVANCE.get(embedder_name.split("+", 1)[0], 0.0))
