"""Compose answers from retrieved sentences: the offline extractive answerer (default) and LLM answerers.

An answerer turns (question, hits) into a ``Draft``: answer sentences, each with the indices
of the hits it cites. The pipeline numbers the citations and verifies them (rag/verify.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.config import Config
from rag.questions import (ANSWER_PATTERNS, ENTITY_LABELS, REASON, answer_type, entity_kind, has_new_answer,
                           has_new_entity, named_in, question_words, sub_questions, terms)
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


_TYPED = ("money", "number", "date", "year", "person", "org", "place")


def holds_answer(question: str, hit: Hit, tagged: bool = True) -> bool | None:
    """Does ``hit`` hold an answer of the kind asked for (a sum, a figure, a date, a person, a
    firm, a place) that the question does not already name? None when nothing can be checked:
    the question asks for no such kind (a reason, a description), or it asks for a person, firm
    or place and the index has no entities (``tagged`` False).
    """
    kind = entity_kind(question)
    if kind not in _TYPED or (not tagged and kind in ("person", "org", "place")):
        return None
    if kind in ("money", "number", "date", "year") and has_new_answer(kind, hit.text, question):
        return True
    found = [(hit.text[e.start - hit.start : e.end - hit.start], e.label) for e in hit.entities]
    return has_new_entity(kind, found, question)


def answer_span(question: str, sentence: str, entities=()) -> tuple[int, int] | None:
    """Where the short answer sits in ``sentence`` for who/where/when/how-many questions, if found.

    ``entities``: the sentence's named entities as ``(start, end, label)`` within ``sentence``.
    A name, organisation, place or title of the asked kind is taken from them ("Which firm ...?"
    -> "Intel"); figures, dates and reasons are found by pattern.

    >>> s = "The network has been developed by Intel, working with the staff at Wolong."
    >>> answer_span("Which technology firm built the network at Wolong?", s, [(34, 39, "ORG"), (67, 73, "GPE")])
    (34, 39)
    """
    q = question_words(question)
    wanted = entity_kind(question)
    if wanted in ("person", "org", "place", "work"):
        for start, end, label in entities:
            if label in ENTITY_LABELS[wanted] and not named_in(sentence[start:end], q):
                return start, end
    kind = answer_type(question)
    if kind == "reason":  # the reason runs from its cue ("due to ...") to the end of the clause
        m = REASON.search(sentence)
        if not m:
            return None
        end = re.search(r"[.;”\"]|,\s(?:adding|while|but)\b", sentence[m.end():])
        return m.start(), m.end() + (end.start() if end else len(sentence) - m.end())
    pattern = ANSWER_PATTERNS.get(kind or "")
    if pattern is None:
        return None
    best = None
    for m in pattern.finditer(sentence):
        text = m.group().strip()
        if not text or named_in(text, q):
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
    and abstains when even the best sentence is a poor match. A compound question ("..., and
    why ...?") is answered part by part, from the hits each part found, one sentence each.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def answer(self, question: str, hits: list[Hit]) -> Draft:
        parts = sub_questions(question)
        if len(parts) == 1 or not any(h.part for h in hits):
            return self._answer(question, hits)
        merged = Draft(abstained=True)
        for n, part in enumerate(parts):
            found = [i for i, h in enumerate(hits) if h.part == n]
            draft = self._answer(part, [hits[i] for i in found])
            if draft.abstained:
                continue
            text, cited = draft.sentences[0]
            if any(text == t for t, _ in merged.sentences):
                continue
            if merged.abstained:  # the first answered part leads, with its short-answer span
                merged = Draft(span=draft.span)
            merged.sentences.append((text, [found[i] for i in cited]))
            merged.short_answer = "; ".join(x for x in (merged.short_answer, draft.short_answer) if x)
        return merged

    def _answer(self, question: str, hits: list[Hit]) -> Draft:
        if not hits:
            return Draft(abstained=True)
        conf = [confidence(question, h) for h in hits]
        if max(conf) < self.config.abstain_threshold:
            return Draft(abstained=True)
        order = sorted(range(len(hits)), key=lambda i: -hits[i].score)
        n = self.config.typed_abstain_hits  # 0: off
        if n and not any(holds_answer(question, hits[i], self.config.tags_entities) is not False for i in order[:n]):
            # "How much did Amazon invest in the lab?" over articles that name no sum: the best
            # sentences are on topic, so confidence is high, but none holds what was asked for.
            return Draft(abstained=True)
        kind = answer_type(question)
        first = order[0]
        if kind and _span(question, hits[first]) is None:
            # A near-top sentence that holds the asked-for kind of answer is the more direct one.
            for i in order[1:3]:
                if hits[i].score >= 0.9 * hits[first].score and _span(question, hits[i]):
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
        span = _span(question, hits[first])
        return Draft(
            sentences=[(hits[i].text, [i]) for i in chosen],
            short_answer=hits[first].text[span[0] : span[1]] if span else "",
            span=span,
        )


def _span(question: str, hit: Hit) -> tuple[int, int] | None:
    """``answer_span`` of a retrieved sentence, with its entities moved to sentence offsets."""
    return answer_span(question, hit.text, [(e.start - hit.start, e.end - hit.start, e.label) for e in hit.entities])
