"""When the engine answers "not in the documents": the model's own refusal, calibrated.

Two tests guard an answer. The first, before the model, is retrieval's: the best passage's dense
cosine under ``rag.retrieve.MIN_RELEVANCE`` (another product's question). The second is here:
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

from ingest.settings import Settings

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
