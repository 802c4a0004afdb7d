"""Compose answers from retrieved sentences: the offline extractive answerer (default) and LLM answerers.

An answerer turns (question, hits) into a ``Draft``: answer sentences, each with the indices
of the hits it cites. The pipeline numbers the citations and verifies them (rag/verify.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.config import Config
from rag.questions import (ANSWER_PATTERNS, ENTITY_LABELS, REASON, WORD, answer_type, asked_unit, entity_kind,
                           has_new_answer, has_new_entity, named_in, question_words, sub_questions, terms)
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


def holds_answer(question: str, text: str, entities: list[tuple[str, str]], tagged: bool = True) -> bool | None:
    """Does ``text`` hold an answer of the kind asked for (a sum, a figure, a date, a person, a
    firm, a place) that the question does not already name? None when nothing can be checked:
    the question asks for no such kind (a reason, a description), or it asks for a person, firm
    or place and there are no entities (``tagged`` False). ``entities``: ``(text, label)`` pairs.

    >>> holds_answer("Who runs the lab?", "The lab is run by Wang Minjie.", [("Wang Minjie", "PERSON")])
    True
    >>> holds_answer("Who runs the lab?", "The lab has a new head.", [])
    False
    """
    kind = entity_kind(question)
    if kind not in _TYPED or (not tagged and kind in ("person", "org", "place")):
        return None
    asked = question_words(question)
    if kind in ("money", "number", "date", "year") and has_new_answer(kind, text, asked):
        return True
    return has_new_entity(kind, entities, asked)


def entity_texts(hit: Hit) -> list[tuple[str, str]]:
    """A retrieved sentence's named entities as ``(text, label)`` pairs."""
    return [(hit.text[e.start - hit.start : e.end - hit.start], e.label) for e in hit.entities]


def answer_span(question: str, sentence: str, entities=()) -> tuple[int, int] | None:
    """Where the short answer sits in ``sentence`` for who/where/when/how-many questions, if found.

    ``entities``: the sentence's named entities as ``(start, end, label)`` within ``sentence``.
    An entity of the asked kind that the question does not name is taken whole ("Which firm
    ...?" -> "Intel"; "Over which years ...?" -> "between 2008 and 2012"); a figure next to the
    counted thing comes first ("How many journalists ...?" -> "521", not "two"). Without
    entities, figures, dates and reasons are found by pattern.

    >>> s = "The network has been developed by Intel, working with the staff at Wolong."
    >>> answer_span("Which technology firm built the network at Wolong?", s, [(34, 39, "ORG"), (67, 73, "GPE")])
    (34, 39)
    """
    q = question_words(question)
    wanted = entity_kind(question)
    kind = answer_type(question) or (wanted if wanted in ("money", "number", "date", "year") else None)
    unit = asked_unit(question) if kind in ("number", "money") else None
    labels = ENTITY_LABELS.get(wanted or "", ())
    found = [_widen(sentence, (start, end)) if kind in ("number", "money") else (start, end)
             for start, end, label in sorted(entities, key=lambda e: _LABEL_ORDER.get(e[2], 9))
             if label in labels and not named_in(sentence[start:end], q)
             # a year, or a date that names a day, month or year (spaCy's DATE also covers "29-year-old")
             and (wanted not in ("year", "date") or ANSWER_PATTERNS[wanted].search(sentence[start:end]))]
    if found:
        return _counting(found, sentence, unit) or found[0]
    if kind == "reason":  # the reason runs from its cue ("due to ...") to the end of the clause
        m = REASON.search(sentence)
        if not m:
            return None
        end = re.search(r"[.;”\"]|,\s(?:adding|while|but)\b", sentence[m.end():])
        return m.start(), m.end() + (end.start() if end else len(sentence) - m.end())
    pattern = ANSWER_PATTERNS.get(kind or "")
    if pattern is None:
        return None
    spans = []
    for m in pattern.finditer(sentence):
        text = m.group().strip()
        if not text or named_in(text, q):
            continue  # the question's own words are not the answer
        spans.append(_widen(sentence, m.span()) if kind in ("number", "money") else m.span())
    return (_counting(spans, sentence, unit) or spans[0]) if spans else None


def _widen(sentence: str, span: tuple[int, int]) -> tuple[int, int]:
    """The whole figure around ``span``: "76" -> "76%", "2.2" -> "£2.2m", "1.13" -> "$1.13bn"."""
    s, e = span
    while s > 0 and sentence[s - 1] in "$£€":
        s -= 1
    more = re.match(r"[\d,.]*\s?(?:%|per ?cent|bn|m\b|million|billion|thousand)?", sentence[e:], re.I)
    e += more.end() if more else 0
    return s, len(sentence[:e].rstrip(" ,."))


# For a figure, a percentage, sum or measure is a more likely answer than a bare count, an ordinal or a date.
_LABEL_ORDER = {"PERCENT": 0, "MONEY": 1, "QUANTITY": 2, "CARDINAL": 3}


def _counting(spans: list[tuple[int, int]], sentence: str, unit: str | None) -> tuple[int, int] | None:
    """The first span followed, within three words, by the counted thing ("521 journalists")."""
    if not unit:
        return None
    for start, end in spans:
        if unit in {next(iter(terms(w)), "") for w in WORD.findall(sentence[end:])[:3]}:
            return start, end
    return None


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
        order = sorted(range(len(hits)), key=lambda i: -hits[i].score)
        # Only the best sentences vouch for an answer: a weak tenth hit that happens to share the
        # question's words is no reason to answer (measured on bbc-dev and bbc-train, eval/README.md).
        if max(conf[i] for i in order[: max(1, self.config.confident_hits)]) < self.config.abstain_threshold:
            return Draft(abstained=True)
        n = self.config.typed_abstain_hits  # 0: off
        if n and not any(holds_answer(question, hits[i].text, entity_texts(hits[i]), self.config.tags_entities) is not False
                         for i in order[:n]):
            # "How much did Amazon invest in the lab?" over articles that name no sum: the best
            # sentences are on topic, so confidence is high, but none holds what was asked for.
            return Draft(abstained=True)
        kind = answer_type(question)
        first = order[0]
        if kind and _span(question, hits[first]) is None:
            # A near-top sentence that holds the asked-for kind of answer is the more direct one.
            for i in order[1:3]:
                if hits[i].score >= self.config.direct_answer_ratio * hits[first].score and _span(question, hits[i]):
                    first = i
                    break
        chosen = [first]
        for i in order:
            if len(chosen) >= self.config.max_answer_sentences:
                break
            if i in chosen or conf[i] < self.config.abstain_threshold:
                continue
            if hits[i].score >= self.config.second_sentence_ratio * hits[first].score and hits[i].article_id != hits[first].article_id:
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
