"""Rewrite a follow-up question into one that stands alone, using the conversation so far."""

from __future__ import annotations

import re
from typing import Callable

from rag.questions import ANSWER_PATTERNS, ENTITY_LABELS, WORD, entity_kind, named_in, question_words

_ANAPHOR = re.compile(r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|there|the company|the firm|the lab)\b", re.I)
_ELLIPSIS = re.compile(r"^\s*(also|why|when|where|how)\b[^?]{0,25}\??\s*$", re.I)
_FUNCTION = frozenset(
    """a an the of to in on for and or but is are was were be been do does did has have had what which who
    whom whose when where why how many much that this these those it its with by from as at about into
    they them their he she his her there can could would should will may might not say said tell me us
    please more also""".split()
)


Names = Callable[[str], list[tuple[str, str]]]


def _content(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if w.lower() not in _FUNCTION]


# A short continuation ("What about co-productions with the US?") leans on the last turn even
# when it names something; a long one ("And how many were not willing to hand over ...?") says
# what it asks by itself.
_CONTINUES = re.compile(r"^\s*(and|what about|how about|what of)\b[^?]{0,40}\??\s*$", re.I)


def needs_context(question: str) -> bool:
    """True for questions that lean on an earlier turn ("When did it close?", "And the profit?").

    A question naming something of its own stands alone ("Which Channel Five programme was he
    on?" finds its sentence by its own words), unless it opens as a short continuation ("What
    about co-productions with the US?").
    """
    has_entity = any(w[0].isupper() for w in WORD.findall(question)[1:])
    return bool(_ANAPHOR.search(question)) and not has_entity or bool(_ELLIPSIS.match(question)) or (
        bool(_CONTINUES.match(question))) or (not has_entity and len(_content(question)) <= 2)


def standalone(question: str, history: list[tuple[str, str]] | None, names: Names | None = None) -> str:
    """``question`` made self-contained by naming what the conversation is about.

    ``history`` holds (question, answer) pairs, oldest first, as asked (or already made
    standalone). Each earlier question is resolved in turn first, so a chain of follow-ups keeps
    its topic: after "Why did Amazon close its Shanghai lab?" and "When did it close?", "When
    was it set up?" is still about the Shanghai lab. ``names(text)``, when given, lists the named
    entities of a text as ``(text, label)`` pairs (the ingest's tagger). Then "he" or "she" after
    a who-question is the person its answer named, and "it" or "they" after a which-question
    asking for a firm, place or work is the one its answer named ("Which firm bought Yugansk?"
    ... "How much did it pay?").

    >>> standalone("When did it close?", [("Why did Amazon close its Shanghai lab?", "...")])
    'When did it close? (Amazon Shanghai lab)'
    >>> standalone("When was it set up?", [("Why did Amazon close its Shanghai lab?", "..."), ("When did it close?", "...")])
    'When was it set up? (Amazon Shanghai lab)'
    >>> standalone("How old is she?", [("Who runs the lab?", "Dr Ada Wong runs it. [1]")], lambda text: [("Ada Wong", "PERSON")])
    'How old is she? (Ada Wong runs lab)'
    """
    question = question.strip()
    if not history or not needs_context(question):
        return question
    # A topic is set within the last few turns; resolving an API client's thousands of turns, each
    # perhaps tagged, would only cost time.
    history = history[-MAX_TURNS:]
    resolved: list[str] = []
    for n, (earlier, _) in enumerate(history):
        earlier = earlier.strip()
        resolved.append(_rewrite(earlier, resolved, history[:n], names) if needs_context(earlier) else earlier)
    return _rewrite(question, resolved, history, names)


MAX_TURNS = 20
_CONTEXT = re.compile(r"\s*\(([^)]*)\)\s*$")
_PERSONAL = re.compile(r"\b(he|she|him|her|his|hers|himself|herself)\b", re.I)
_IMPERSONAL = re.compile(r"\b(it|its|it's|they|them|their|theirs|there|the (company|firm|club|team|group|band|country|city|film|show|game))\b", re.I)
_MARKER = re.compile(r"\s*\[\d+\]")


def _rewrite(question: str, earlier: list[str], history: list[tuple[str, str]], names: Names | None) -> str:
    """``question`` with the topic of the latest of the ``earlier`` (standalone) questions that has one."""
    have = {w.lower() for w in _content(question)}
    named = _answered(question, earlier, history, names)
    for previous in reversed(earlier):
        context = _CONTEXT.search(previous)
        # A rewritten follow-up carries the conversation's topic in its brackets; its own words
        # ("When did it close?") asked about that topic and are not the topic.
        source = context.group(1) if context else previous
        topic = [w for w in _content(f"{named} {source}") if w.lower() not in have and not _is_verb_like(w, question, previous)
                 and not _swapped(w, question)]
        if topic:
            seen, words = set(), []
            for w in topic:
                if w.lower() not in seen:
                    seen.add(w.lower())
                    words.append(w)
            return f"{question} ({' '.join(words)})"
    return question


def _answered(question: str, earlier: list[str], history: list[tuple[str, str]], names: Names | None) -> str:
    """What the last answer named, when ``question`` points at it: "he" after a who-question, "it"
    after "Which firm ...?"; the name is added to the topic, which still carries the question's words."""
    if not (names and earlier and history):
        return ""
    kind = entity_kind(earlier[-1])
    if kind == "person":
        pronoun, labels = _PERSONAL, ENTITY_LABELS["person"]
    elif kind in ("org", "place", "work") or (kind is None and _WHICH.match(earlier[-1])):
        # The tagger often mislabels a firm, club or group (Balfour Beatty as a person, Valencia
        # as a place): any name the question did not give is the one the answer gave.
        pronoun, labels = _IMPERSONAL, _PROPER_LABELS
    else:
        return ""
    if not pronoun.search(question):
        return ""
    first = _MARKER.split(history[-1][1][:2000], maxsplit=1)[0]  # the answer's first sentence, up to its marker
    asked = question_words(earlier[-1])
    return next((text for text, label in names(first) if label in labels and not named_in(text, asked)), "")


_WHICH = re.compile(r"^\s*(?:and\s+)?(?:in\s+|at\s+|of\s+|for\s+)?which\s+(?!(?:do|does|did|is|are|was|were|has|have|had|will|would|can|could)\b)\w", re.I)
_PROPER_LABELS = frozenset("ORG GPE LOC FAC PRODUCT WORK_OF_ART EVENT NORP PERSON LAW".split())


_FIGURE = re.compile(r"^[$£€]?\d[\d,.]*(?:%|bn|m|k)?$")


def _swapped(word: str, question: str) -> bool:
    """Is ``word`` a year or figure that the follow-up replaces with its own ("And in 2003?" after "... in 2004?")?"""
    year = ANSWER_PATTERNS["year"].fullmatch
    return bool(_FIGURE.match(word)) and any(_FIGURE.match(w) and bool(year(w)) == bool(year(word))
                                             for w in WORD.findall(question))


def _is_verb_like(word: str, question: str, previous: str) -> bool:
    """Drop the previous question's main verb when it reappears in the follow-up (close/closed)."""
    w = word.lower()
    q = {x.lower() for x in WORD.findall(question)}
    return any(x.startswith(w[:4]) for x in q) and not word[0].isupper()
