"""Rewrite a follow-up question into one that stands alone, using the conversation so far."""

from __future__ import annotations

import re

from rag.questions import WORD

_ANAPHOR = re.compile(r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|there|the company|the firm|the lab)\b", re.I)
_ELLIPSIS = re.compile(r"^\s*(and|what about|how about|what of|also|why|when|where|how)\b[^?]{0,25}\??\s*$", re.I)
_FUNCTION = frozenset(
    """a an the of to in on for and or but is are was were be been do does did has have had what which who
    whom whose when where why how many much that this these those it its with by from as at about into
    they them their he she his her there can could would should will may might not say said tell me us
    please more also""".split()
)


def _content(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if w.lower() not in _FUNCTION]


def needs_context(question: str) -> bool:
    """True for questions that lean on an earlier turn ("When did it close?", "And the profit?")."""
    has_entity = any(w[0].isupper() for w in WORD.findall(question)[1:])
    return bool(_ANAPHOR.search(question)) and not has_entity or bool(_ELLIPSIS.match(question)) or (
        not has_entity and len(_content(question)) <= 2
    )


def standalone(question: str, history: list[tuple[str, str]] | None) -> str:
    """``question`` made self-contained by naming what the conversation is about.

    ``history`` holds (question, answer) pairs, oldest first, as asked (or already made
    standalone). Each earlier question is resolved in turn first, so a chain of follow-ups keeps
    its topic: after "Why did Amazon close its Shanghai lab?" and "When did it close?", "When
    was it set up?" is still about the Shanghai lab.

    >>> standalone("When did it close?", [("Why did Amazon close its Shanghai lab?", "...")])
    'When did it close? (Amazon Shanghai lab)'
    >>> standalone("When was it set up?", [("Why did Amazon close its Shanghai lab?", "..."), ("When did it close?", "...")])
    'When was it set up? (Amazon Shanghai lab)'
    """
    question = question.strip()
    if not history or not needs_context(question):
        return question
    resolved: list[str] = []
    for earlier, _ in history:
        resolved.append(_rewrite(earlier.strip(), resolved) if needs_context(earlier.strip()) else earlier.strip())
    return _rewrite(question, resolved)


_CONTEXT = re.compile(r"\s*\(([^)]*)\)\s*$")


def _rewrite(question: str, earlier: list[str]) -> str:
    """``question`` with the topic of the latest of the ``earlier`` (standalone) questions that has one."""
    have = {w.lower() for w in _content(question)}
    for previous in reversed(earlier):
        context = _CONTEXT.search(previous)
        # A rewritten follow-up carries the conversation's topic in its brackets; its own words
        # ("When did it close?") asked about that topic and are not the topic.
        source = context.group(1) if context else previous
        topic = [w for w in _content(source) if w.lower() not in have and not _is_verb_like(w, question, previous)]
        if topic:
            seen, words = set(), []
            for w in topic:
                if w.lower() not in seen:
                    seen.add(w.lower())
                    words.append(w)
            return f"{question} ({' '.join(words)})"
    return question


def _is_verb_like(word: str, question: str, previous: str) -> bool:
    """Drop the previous question's main verb when it reappears in the follow-up (close/closed)."""
    w = word.lower()
    q = {x.lower() for x in WORD.findall(question)}
    return any(x.startswith(w[:4]) for x in q) and not word[0].isupper()
