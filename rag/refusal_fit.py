"""Fitting the refusal decision (``rag.refusal.RefusalModel``) on labelled questions.

Input: each question's ``RefusalSignals`` and whether the documents answer it. Output: a
``RefusalModel`` with

- ``min_relevance``: retrieval's gate, the highest cosine that keeps ``KEEP_AT_GATE`` of the
  answerable questions (those below it are refused without the model, so the gate is set low:
  it saves time on off-topic questions, the logistic model decides the rest);
- a logistic regression (L2-penalised, Newton's method on standardised features) over the
  questions that pass the gate;
- ``threshold`` on its probability, maximising balanced accuracy: the mean of "answerable
  questions answered" and "unanswerable questions refused", so a wrong refusal weighs as much as
  an invented answer whatever the mix of the set. Balanced accuracy is flat near its best, so
  the single best cut jumps with small changes of the data (0.247 and 0.311 on the signals of
  two fusion weights that score the same held out, where balanced accuracy varies by 0.008
  between 0.21 and 0.31); the cut shipped is the mean of the best cuts of ``RESAMPLES``
  bootstrap resamples, a smoothed optimum that moves by less than 0.01 with the resampling
  seed (the median moved by 0.04: the best cuts cluster on two plateaus). Held out it scores as
  the single best cut does (bench/README.md).

Fitting is pure numpy and deterministic. ``bench/eval_lopo.py`` calls it once per held-out
product (fitted on the others) and once on everything for the model that ships.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rag.refusal import RefusalModel, RefusalSignals

KEEP_AT_GATE = 0.99  # share of answerable questions retrieval's gate must keep
L2 = 1.0  # ridge penalty on the standardised weights (not on the bias)
RESAMPLES = 1000  # bootstrap resamples behind the threshold (seeded: the fit stays deterministic)


def fit_refusal_model(
    signals: Sequence[RefusalSignals],
    unanswerable: Sequence[bool],
    *,
    embedder: str,
    generator: str,
    fitted_on: str = "",
    l2: float = L2,
) -> RefusalModel:
    """Fit the decision on labelled questions (both classes must be present).

    >>> s = [RefusalSignals(r, r, 1 - r, "en") for r in (0.2, 0.3, 0.6, 0.7, 0.8, 0.9)]
    >>> m = fit_refusal_model(s, [True, True, True, False, False, False], embedder="e", generator="g")
    >>> [m.refuses(x) for x in s]
    [True, True, True, False, False, False]
    """
    if len(signals) != len(unanswerable):
        raise ValueError(f"{len(signals)} signals but {len(unanswerable)} labels")
    y = np.asarray(unanswerable, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("fitting needs answerable and unanswerable questions")
    relevance = np.asarray([s.relevance for s in signals])
    floor = _gate(relevance[y == 0])
    passed = relevance >= floor
    x = np.asarray([s.vector() for s in signals], dtype=np.float64)[passed]
    y = y[passed]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    weights, bias = _logistic(z, y, l2)
    scores = 1.0 / (1.0 + np.exp(-(z @ weights + bias)))
    threshold = _stable_threshold(scores, y.astype(bool))
    return RefusalModel(
        embedder=embedder,
        generator=generator,
        min_relevance=math.floor(float(floor) * 1e6) / 1e6,  # rounded down: the gate keeps what it kept
        mean=tuple(round(float(v), 6) for v in mean),
        scale=tuple(round(float(v), 6) for v in scale),
        weights=tuple(round(float(v), 6) for v in weights),
        bias=round(float(bias), 6),
        threshold=round(float(threshold), 6),
        fitted_on=fitted_on,
    )


def _gate(answerable_relevance: np.ndarray) -> float:
    """The highest cosine below which at most ``1 - KEEP_AT_GATE`` of answerable questions fall.

    >>> _gate(np.array([0.5, 0.6, 0.7]))
    0.5
    """
    ordered = np.sort(answerable_relevance)
    lost = int(np.floor(len(ordered) * (1 - KEEP_AT_GATE)))
    return float(ordered[lost]) if len(ordered) else 0.0


def _logistic(z: np.ndarray, y: np.ndarray, l2: float, steps: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method; returns (weights, bias)."""
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.diag([l2] * d + [0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        gradient = a.T @ (p - y) + penalty @ w
        hessian = a.T @ (a * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _stable_threshold(scores: np.ndarray, unanswerable: np.ndarray, resamples: int = RESAMPLES) -> float:
    """The mean over seeded bootstrap resamples of ``_balanced_threshold``'s cut.

    >>> round(_stable_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True])), 2)
    0.5
    """
    rng = np.random.default_rng(0)
    cuts = []
    for _ in range(resamples):
        pick = rng.integers(0, len(scores), len(scores))
        if unanswerable[pick].all() or not unanswerable[pick].any():
            continue  # one class only: no cut to learn
        cuts.append(_balanced_threshold(scores[pick], unanswerable[pick]))
    return float(np.mean(cuts)) if cuts else _balanced_threshold(scores, unanswerable)


def _balanced_threshold(scores: np.ndarray, unanswerable: np.ndarray) -> float:
    """The cut on ``scores`` maximising (answerable kept + unanswerable refused) / 2.

    Candidates are midpoints between neighbouring scores; ties go to the higher cut (fewer
    refusals).

    >>> _balanced_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True]))
    0.5
    """
    values = np.unique(scores)
    cuts = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [1.0]])
    answerable = np.sort(scores[~unanswerable])
    refusable = np.sort(scores[unanswerable])
    kept = np.searchsorted(answerable, cuts, side="left")  # answerable below the cut: answered
    refused = len(refusable) - np.searchsorted(refusable, cuts, side="left")  # at or above: refused
    score = (kept / max(len(answerable), 1) + refused / max(len(refusable), 1)) / 2
    best = np.flatnonzero(score >= score.max() - 1e-12)
    return float(cuts[best[-1]])
