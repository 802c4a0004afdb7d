"""Compose answers from retrieved sentences: the offline extractive answerer (default) and LLM answerers.

An answerer turns (question, hits) into a ``Draft``: answer sentences, each with the indices
of the hits it cites. The pipeline numbers the citations and verifies them (rag/verify.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.config import Config
from rag.retrieval import ANSWER_PATTERNS, _REASON, answer_type, terms
from rag.types import Hit

ABSTAIN_TEXT = "The articles don't say."


@dataclass
class Draft:
    """An answer before citations are numbered: sentences and the hit indices each one cites."""

    sentences: list[tuple[str, list[int]]] = field(default_factory=list)
    abstained: bool = False
    short_answer: str = ""
    span: tuple[int, int] | None = None  # short answer inside the first sentence


_PROPER = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w'’\-]+")


def confidence(question: str, hit: Hit) -> float:
    """How sure we are that ``hit`` speaks to ``question``, 0..1.

    Dense similarity and term coverage of the sentence, scaled down when the names the question
    asks about (capitalised words) are missing from the sentence and its neighbours: questions
    the corpus cannot answer are usually about people, firms or events it never mentions.
    """
    q = terms(question)
    around = " ".join((hit.title, *hit.before, hit.text, *hit.after))
    cov = len(q & terms(hit.text + " " + hit.title)) / len(q) if q else 0.0
    base = 0.6 * hit.scores.get("dense", 0.0) + 0.4 * cov
    names = terms(" ".join(_PROPER.findall(question)))
    if not names:
        return base
    found = len(names & terms(around)) / len(names)
    return base * (0.5 + 0.5 * found)


def answer_span(question: str, sentence: str) -> tuple[int, int] | None:
    """Where the short answer sits in ``sentence`` for who/when/how-many questions, if found."""
    kind = answer_type(question)
    if kind == "reason":  # the reason runs from its cue ("due to ...") to the end of the clause
        m = _REASON.search(sentence)
        if not m:
            return None
        end = re.search(r"[.;”\"]|,\s(?:adding|while|but)\b", sentence[m.end():])
        return m.start(), m.end() + (end.start() if end else len(sentence) - m.end())
    pattern = ANSWER_PATTERNS.get(kind or "")
    if pattern is None:
        return None
    q = {w.lower() for w in re.findall(r"\w+", question)}
    best = None
    for m in pattern.finditer(sentence):
        text = m.group().strip()
        if not text or all(w.lower() in q for w in re.findall(r"\w+", text)):
            continue  # the question's own words are not the answer
        if kind in ("number", "money"):  # widen "76" to "76%" / "$1.13bn" to the whole figure
            s, e = m.span()
            while s > 0 and sentence[s - 1] in "$£€":
                s -= 1
            e2 = re.match(r"[\d,.]*\s?(?:%|per ?cent|bn|m\b|million|billion|thousand)?", sentence[e:], re.I)
            e += e2.end() if e2 else 0
            span = (s, len(sentence[:e].rstrip(" ,.")))
        else:
            span = m.span()
        best = best or span
    return best


class ExtractiveAnswerer:
    """Answers with the retrieved sentences themselves, verbatim: faithful by construction.

    It picks the sentence that best answers the question (preferring one that holds the kind of
    answer asked for), adds a second sentence from another article when it is nearly as good,
    and abstains when even the best sentence is a poor match.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def answer(self, question: str, hits: list[Hit]) -> Draft:
        if not hits:
            return Draft(abstained=True)
        conf = [confidence(question, h) for h in hits]
        if max(conf) < self.config.abstain_threshold:
            return Draft(abstained=True)
        order = sorted(range(len(hits)), key=lambda i: -hits[i].score)
        kind = answer_type(question)
        first = order[0]
        if kind and answer_span(question, hits[first].text) is None:
            # A near-top sentence that holds the asked-for kind of answer is the more direct one.
            for i in order[1:3]:
                if hits[i].score >= 0.9 * hits[first].score and answer_span(question, hits[i].text):
                    first = i
                    break
        chosen = [first]
        for i in order:
            if len(chosen) >= self.config.max_answer_sentences:
                break
            if i in chosen or conf[i] < self.config.abstain_threshold:
                continue
            if hits[i].score >= 0.92 * hits[first].score and hits[i].article_id != hits[first].article_id:
                chosen.append(i)
        span = answer_span(question, hits[first].text)
        return Draft(
            sentences=[(hits[i].text, [i]) for i in chosen],
            short_answer=hits[first].text[span[0] : span[1]] if span else "",
            span=span,
        )
