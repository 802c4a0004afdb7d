"""The small frozen dataclasses that flow between the stages of the engine.

Offsets are part of the data: for every sentence ``article.text[s.start:s.end] == s.text``,
and a citation's ``start``/``end`` slice its article to exactly its ``sentence``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def content_hash(*parts: str) -> str:
    """Short stable hash of some strings; ids built from it make re-ingesting idempotent."""
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Article:
    """One news article: its id is the path relative to the corpus folder (``#n`` for JSONL records)."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    published: str | None = None  # ISO date, YYYY-MM-DD
    url: str = ""

    @property
    def hash(self) -> str:
        return content_hash(self.id, self.text, self.title, self.source, self.published or "", self.url)


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval: by source, by published date range (ISO, inclusive), by article id."""

    sources: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    article_ids: tuple[str, ...] = ()
    undated: bool = False  # do articles without a known date pass a date range?

    def __bool__(self) -> bool:
        return bool(self.sources or self.date_from or self.date_to or self.article_ids)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Filters":
        """Filters from JSON-ish input (API, CLI); unknown keys are an error, not silently ignored."""
        if not d:
            return cls()
        if isinstance(d, Filters):
            return d
        unknown = set(d) - {"sources", "source", "date_from", "date_to", "article_ids", "article_id"}
        if unknown:
            raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")

        def many(*keys) -> tuple[str, ...]:
            out: list[str] = []
            for k in keys:
                v = d.get(k)
                if v:
                    out.extend([v] if isinstance(v, str) else list(v))
            return tuple(out)

        return cls(many("sources", "source"), d.get("date_from") or None, d.get("date_to") or None,
                   many("article_ids", "article_id"))

    def to_dict(self) -> dict:
        return {"sources": list(self.sources), "date_from": self.date_from, "date_to": self.date_to,
                "article_ids": list(self.article_ids)}


@dataclass(frozen=True)
class Sentence:
    """A sentence of an article, with its character offsets in ``article.text``."""

    article_id: str
    index: int
    start: int
    end: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.article_id}#{self.index}"


@dataclass(frozen=True)
class Entity:
    """A named entity in an article: ``article.text[start:end]``, of a spaCy ``label`` (PERSON, GPE, ORG, ...)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Chunk:
    """The unit that is embedded: whole consecutive sentences of one article.

    ``anchor`` is the sentence the chunk stands for when it is retrieved (the centre of a
    sentence window, or the first sentence of a multi-sentence chunk). ``embed_text`` is what
    the model sees: the text, headed by the article's title when ``Config.embed_title`` is on.
    """

    id: str
    article_id: str
    sentence_indices: tuple[int, ...]
    anchor: int
    start: int
    end: int
    text: str
    embed_text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved sentence, with its neighbours for context and the score that ranked it."""

    article_id: str
    sentence_index: int
    start: int
    end: int
    text: str
    score: float
    title: str = ""
    source: str = ""
    published: str | None = None
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    also_in: tuple[str, ...] = ()  # other articles carrying the same (near-identical) sentence
    scores: dict = field(default_factory=dict, compare=False)  # per-signal scores, for inspection
    entities: tuple[Entity, ...] = ()  # named entities inside the sentence, in article offsets
    part: int = 0  # which part of a compound question found it (rag.questions.sub_questions)

    def to_dict(self) -> dict:
        return {
            "article_id": self.article_id,
            "sentence_index": self.sentence_index,
            "start": self.start,
            "end": self.end,
            "sentence": self.text,
            "score": round(self.score, 4),
            "title": self.title,
            "source": self.source,
            "published": self.published,
            "before": list(self.before),
            "after": list(self.after),
            "also_in": list(self.also_in),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
        }


@dataclass(frozen=True)
class Citation:
    """A source sentence an answer rests on: ``article.text[start:end] == sentence``."""

    n: int
    article_id: str
    title: str
    source: str
    published: str | None
    sentence: str
    start: int
    end: int
    answer_sentence: int  # index of the answer sentence this citation supports
    support: float = 0.0  # how well the cited sentence supports that answer sentence, 0..1

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "article_id": self.article_id,
            "title": self.title,
            "source": self.source,
            "published": self.published,
            "sentence": self.sentence,
            "start": self.start,
            "end": self.end,
            "answer_sentence": self.answer_sentence,
            "support": round(self.support, 4),
        }


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer, the citation numbers behind it, and whether they support it."""

    text: str
    citations: tuple[int, ...] = ()
    supported: bool = True
    support: float = 0.0
    span: tuple[int, int] | None = None  # the short answer inside ``text``, when one was found


@dataclass(frozen=True)
class Answer:
    """What ``ask()`` returns: the answer, its citations, and related sentences it did not cite."""

    question: str
    standalone_question: str
    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    abstained: bool
    related: tuple[Hit, ...] = ()
    short_answer: str = ""
    seconds: float = 0.0
    hits: tuple[Hit, ...] = field(default=(), compare=False)  # everything retrieved, for eval
    answered_by: str = "extractive"  # which answerer wrote what is shown: "extractive" or "llm"
    note: str = ""  # said beside the answer, e.g. that the language model's answer was not backed

    @property
    def text(self) -> str:
        """The answer as shown: each sentence followed by its citation markers."""
        parts = []
        for s in self.sentences:
            marks = "".join(f"[{n}]" for n in s.citations)
            parts.append(f"{s.text} {marks}".strip())
        return " ".join(parts)

    @property
    def support(self) -> float:
        """Mean support over answer sentences (0 when the engine abstained)."""
        if not self.sentences or self.abstained:
            return 0.0
        return sum(s.support for s in self.sentences) / len(self.sentences)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.text,
            "short_answer": self.short_answer,
            "abstained": self.abstained,
            "support": round(self.support, 4),
            "sentences": [
                {"text": s.text, "citations": list(s.citations), "supported": s.supported,
                 "support": round(s.support, 4), "span": list(s.span) if s.span else None}
                for s in self.sentences
            ],
            "citations": [c.to_dict() for c in self.citations],
            "related": [h.to_dict() for h in self.related],
            "answered_by": self.answered_by,
            "note": self.note,
            "seconds": round(self.seconds, 4),
        }
