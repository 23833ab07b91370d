"""Every "not in the documents" decision, in one place.

- The refusal sentences (``REFUSALS``, ``refusal``) the prompt tells the model to use and the
  engine answers with.
- Recognising a refusal in the model's own text (``is_refusal``).
- Retrieval's gate (``relevance``, ``min_relevance_for``): the best passage's dense cosine under a
  per-embedder threshold means nothing relevant was found (another product's question), refused
  without the model.
- The decision before decoding (``RefusalModel``): retrieval's gate, then a logistic model over
  the signals of one question together (``RefusalSignals``: the best dense cosine, the share of
  the question's content words the shown passages hold, and the generator's probability of
  starting its answer with the refusal sentence, measured on the prompt's prefill), fitted
  per embedder and generator by ``bench/eval_lopo.py`` and stored in ``refusal_models.json``.

Why a fitted decision over several signals: single thresholds on the model's refusal probability
chosen on one manual (0.0324 English, 0.256 Spanish) refused 57 of 70 answerable questions on FAQ
pages of products nobody had tuned on, because that probability spreads widely for answerable
questions of another style. The model is fitted on the dev set with leave-one-product-out, and
the figures it reports (bench/README.md) are those of the product left out. A wrong refusal of
an answerable question counts as much as an invented answer: the threshold maximises their mean
rate (balanced accuracy) on the products it is fitted on.

An embedder and generator pair without a fitted model gets retrieval's gate (``MIN_RELEVANCE``)
and the model's own refusal in its text; ``refusal_probability`` (settings) replaces the fitted
decision by one threshold on the refusal probability (1 turns the model gate off).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.records import Passage
from ingest.settings import Settings
from rag.text import content_words, fold

REFUSALS = {
    "en": "I could not find this in the documents.",
    "es": "No encontré esto en los documentos.",
}
# Refusals, matched on lower-cased text without accents.
_REFUSAL_EXACT = ("i could not find this in the documents", "no encontre esto en los documentos")
_REFUSAL_VARIANTS = re.compile(
    r"(could not|couldn't|cannot|can't|can not|would not|unable to|did not|didn't) (find|answer|determine)"
    r"|(is|are) not (mentioned|provided|found|stated|specified|included) in the (passages|documents)"
    r"|(passages|documents|context) (do|does) not (contain|mention|provide|say|include|specify)"
    r"|no (information|mention) (about|on|of|regarding)"
    r"|no (encontre|encontrado|encontramos|pude encontrar|puedo responder|hay informacion)"
    r"|no se (encuentra|menciona)\w* en (los|estos) (documentos|pasajes)"
    r"|(pasajes|documentos) no (contienen|mencionan|incluyen|dicen|proporcionan)"
    # Qwen 0.5B's own wordings: "No se encontró esto ...", "No hay encontré esto ..."
    r"|no (se |hay |he )?(encontr|hall)\w* (esto|eso|nada|informacion|la respuesta)"
)

# Refusal thresholds on the best passage's dense cosine, per embedder (bench/tune_fusion.py and
# bench/check_refusal.py): the highest that keeps every answerable question of the sample manuals
# and >= 95% of the dev set's (Gemma 0.35: 98.0% kept, 74.9% of other products' questions refused;
# MiniLM 0.30: 97.4% / 71.5%). Cosine scales differ between models, so an unknown one gets 0.
MIN_RELEVANCE = {"embeddinggemma-300m": 0.35, "all-minilm-l6-v2": 0.30}

MODELS_FILE = Path(__file__).with_name("refusal_models.json")
FEATURES = ("relevance", "overlap", "refusal_logit", "spanish", "spanish_refusal_logit")
_P_CLIP = 1e-6  # probabilities are clipped before their logit: 0 and 1 would be infinite


@dataclass(frozen=True)
class RefusalSignals:
    """What the engine knows about one question before the model writes an answer.

    Attributes:
        relevance: the best passage's dense cosine (``relevance``).
        overlap: the share of the question's content words found in the passages shown to the
            model (``overlap``), 0..1.
        probability: the generator's probability of starting its answer with the refusal
            sentence; None when the generator cannot tell.
        lang: the answer's language.
    """

    relevance: float
    overlap: float
    probability: float | None
    lang: str

    def vector(self) -> list[float]:
        """The features in ``FEATURES`` order (a missing probability counts as even odds).

        >>> RefusalSignals(0.5, 0.25, 0.5, "es").vector()
        [0.5, 0.25, 0.0, 1.0, 0.0]
        """
        p = 0.5 if self.probability is None else min(max(self.probability, _P_CLIP), 1 - _P_CLIP)
        logit = math.log(p / (1 - p))
        spanish = 1.0 if self.lang == "es" else 0.0
        return [self.relevance, self.overlap, logit, spanish, spanish * logit]


@dataclass(frozen=True)
class RefusalModel:
    """A fitted "not in the documents" decision for one embedder and generator.

    Retrieval's gate first (``min_relevance``, no model needed), then a logistic model over the
    standardised ``RefusalSignals`` gives the probability that the documents do not answer; at or
    above ``threshold`` the engine refuses.
    """

    embedder: str
    generator: str
    min_relevance: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    fitted_on: str = ""

    def unanswerable(self, signals: RefusalSignals) -> float:
        """The model's probability that the documents do not answer the question.

        >>> m = RefusalModel("e", "g", 0.3, (0,) * 5, (1,) * 5, (-10, 0, 0, 0, 0), 0.0, 0.5)
        >>> round(m.unanswerable(RefusalSignals(0.0, 0.0, None, "en")), 2)
        0.5
        """
        z = self.bias + sum(
            w * (x - m) / s
            for w, x, m, s in zip(self.weights, signals.vector(), self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def refuses(self, signals: RefusalSignals) -> bool:
        """Whether to answer "not in the documents" for these signals."""
        return signals.relevance < self.min_relevance or self.unanswerable(signals) >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "features": list(FEATURES)}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> RefusalModel:
        """The model ``as_dict`` wrote (keys it does not know, such as ``features``, ignored).

        >>> m = RefusalModel("e", "g", 0.3, (0.0,), (1.0,), (-1.0,), 0.0, 0.5)
        >>> RefusalModel.from_dict(m.as_dict()) == m
        True
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k in fields})


def load_refusal_model(embedder: str, generator: str, path: Path = MODELS_FILE) -> RefusalModel | None:
    """The fitted decision for ``embedder`` and ``generator`` (names as in the manifest), or None.

    A decision fitted on this very embedder comes first ("embeddinggemma-300m+onnx-int8", the
    default, has its own: its cosines run 0.0075 lower on the dev set, bench/backend_shift.py);
    an ONNX backend without one ("embeddinggemma-300m+onnx", vectors equal to fp32's) uses its
    fp32 model's decision; failing both, one fitted on another backend of the same model (the
    1.5B generator's decision exists for int8 only). On the 0.5B's torch signals the int8
    decision's held-out folds refuse 0.884 of unanswerable questions where torch's own refuse
    0.907, and retrieval's gate alone 0.324 (bench/README.md).
    """
    if not path.is_file():
        return None
    fitted = json.loads(path.read_text(encoding="utf-8"))
    base = embedder.split("+", 1)[0]
    entries = [e for e in fitted.get("models", []) if e["generator"] == generator]
    siblings = sorted(e["embedder"] for e in entries if e["embedder"].split("+", 1)[0] == base)
    for name in (embedder, base, *siblings):
        for entry in entries:
            if entry["embedder"] == name:
                if tuple(entry.get("features", FEATURES)) != FEATURES:
                    return None  # fitted on other features: not usable by this version
                return RefusalModel.from_dict(entry)
    return None


def overlap(question: str, passages: Sequence[Passage]) -> float:
    """The share of ``question``'s content words that occur in ``passages`` (1 when it has none).

    >>> p = Passage("c", "f.txt", "The WG output gives sine waves.", None, "", "en", 1.0, 1)
    >>> overlap("What does the WG output give at 5 kHz?", [p])  # wg, output of wg, output, give, 5, khz
    0.4
    """
    words = content_words(question)
    if not words:
        return 1.0
    seen = set().union(*(content_words(p.text) for p in passages)) if passages else set()
    return len(words & seen) / len(words)


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


def min_relevance_for(settings: Settings, embedder_name: str, model: RefusalModel | None = None) -> float:
    """Retrieval's gate: ``settings.min_relevance``; if negative, the fitted decision's, else the
    embedder's value in ``MIN_RELEVANCE`` (0 for an embedder without one)."""
    if settings.min_relevance >= 0:
        return settings.min_relevance
    if model is not None:
        return model.min_relevance
    # "embeddinggemma-300m+onnx-int8" gets the fp32 model's value: its ranking matches fp32 within
    # 0.1 % nDCG@10 (bench/bench_embed_backends.py), but the threshold was not re-measured on it.
    return MIN_RELEVANCE.get(embedder_name, MIN_RELEVANCE.get(embedder_name.split("+", 1)[0], 0.0))
