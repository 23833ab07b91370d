"""An optional LLM judge: a model grades each answer against the gold answer, 1 to 5.

Off by default (``docqa eval --judge`` turns it on). Any docqa generator can judge; the CLI uses
the OpenAI-compatible server of the settings, since a small local model judges poorly. The grade
is parsed as the first digit 1-5 of the reply and scaled to 0..1; a reply without one gives
None (counted as "not judged", never as 0), so a chatty judge cannot produce NaN or crash a run.
"""

from __future__ import annotations

import re

from ingest.records import Message
from rag.evaluate.questions import Question

_GRADE = re.compile(r"[1-5]")
_RUBRIC = (
    "You grade answers to questions about product manuals. Compare the ANSWER with the REFERENCE. "
    "5: same facts, nothing wrong. 4: right, minor omissions. 3: partly right. 2: mostly wrong or "
    "off-topic. 1: wrong or contradicts the reference. Reply with the digit only."
)


class LLMJudge:
    """Grades answers with a generator (anything with ``stream(messages, max_new_tokens)``).

    Args:
        generator: the judging model, e.g. ``rag.openai_generator.OpenAIGenerator``.
    """

    def __init__(self, generator) -> None:
        self.generator = generator
        self.name = getattr(generator, "name", "judge")

    def __call__(self, question: Question, answer: str) -> float | None:
        """The grade of ``answer`` scaled to 0..1, or None when the reply holds no grade.

        >>> class Fixed:
        ...     def stream(self, messages, max_new_tokens):
        ...         yield "Grade: 4"
        >>> LLMJudge(Fixed())(Question("q", "Why?", answer="Because."), "Because.")
        0.75
        """
        prompt = f"QUESTION: {question.question}\nREFERENCE: {question.answer}\nANSWER: {answer}\nGRADE:"
        messages = [Message("system", _RUBRIC), Message("user", prompt)]
        reply = "".join(self.generator.stream(messages, 8))
        found = _GRADE.search(reply)
        return None if found is None else (int(found.group()) - 1) / 4
