"""Find the sentences that answer a question: dense + BM25 candidates, fusion, second stage, dedup.

1. Candidates: the nearest chunks in Chroma (dense, all-MiniLM-L6-v2) and the best BM25
   sentences (bm25s), both under the same filters.
2. Fusion: reciprocal rank fusion of the two ranked lists.
3. Second stage (``Config.rerank``): every fused candidate is rescored by a weighted sum of
   its dense similarity, its normalised BM25 score, how many of the question's terms the
   sentence and its article title carry, and an answer-type cue (a number for "how many",
   a date for "when", a name for "who", a cause for "why"). Weights (``Config.rerank_weights``)
   were fitted on eval/questions/bbc-dev.jsonl.
4. Near-identical sentences from different articles collapse into one hit (``also_in``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np

from rag.chunking import chunk
from rag.config import Config
from rag.embedding import Embedder
from rag.store import Store
from rag.timephrases import date_range
from rag.types import Filters, Hit

RRF_K = 60  # the constant from Cormack et al. (2009); damps the head of each list

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
_STOP = frozenset(
    """a an the of to in on for and or but is are was were be been being do does did has have had
    what which who whom whose when where why how many much that this these those it its with by from
    as at about into than then there their they them he she his her him we our you your i me my
    not no yes can could would should will shall may might must if so such also any some all each
    say says said tell told according""".split()
)
_NUMBER = re.compile(r"(?:[$£€]\s?\d|\d[\d,.]*\s?(?:%|per ?cent|bn|m\b|million|billion|thousand|k\b)|\b\d[\d,.]*\b)", re.I)
_DATE = re.compile(
    r"\b(?:19|20)\d\d\b|\b(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"yesterday|today|last week|last month|last year|next week|next year)\b",
    re.I,
)
_YEAR = re.compile(r"\b(?:1[89]|20)\d\d\b")
_REASON = re.compile(
    r"\b(?:because|due to|owing to|as a result|result of|in order to|so that|after|amid|following|blamed|"
    r"caused by|reason|since|thanks to|led to|citing|cited)\b",
    re.I,
)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+")


def terms(text: str) -> set[str]:
    """Content words of ``text``, lower-cased, crudely stemmed (plural 's' dropped)."""
    out = set()
    for w in _WORD.findall(text.lower()):
        w = w.strip("'’-")
        if w and w not in _STOP:
            out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def answer_type(question: str) -> str | None:
    """What kind of answer the question wants: 'number', 'year', 'date', 'reason', 'name' or None."""
    q = question.lower()
    if re.search(r"\b(what|which) year\b|\bin what year\b", q):
        return "year"
    if re.search(r"\bhow (many|much|long|old|far|big|large|often)\b|\bwhat (percentage|share|proportion|amount|price|number)\b|\bby how\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month)\b|\bwhich (year|date|day|month)\b", q):
        return "date"
    if re.search(r"\bwhy\b|\bwhat (caused|led to|prompted)\b|\bfor what reason\b", q):
        return "reason"
    if re.search(r"\bwho\b|\bwhose\b|\bwhich (company|firm|person|player|team|club|country|band|group|minister|actor|singer|film)\b", q):
        return "name"
    return None


def has_answer_type(kind: str | None, sentence: str) -> bool:
    if kind == "number":
        return bool(_NUMBER.search(sentence))
    if kind == "date":
        return bool(_DATE.search(sentence))
    if kind == "year":
        return bool(_YEAR.search(sentence))
    if kind == "name":
        return bool(_NAME.search(sentence))
    if kind == "reason":
        return bool(_REASON.search(sentence))
    return False


@dataclass
class _Candidate:
    article_id: str
    index: int
    dense: float | None = None
    dense_rank: int | None = None
    bm25: float = 0.0
    bm25_rank: int | None = None
    score: float = 0.0


class HybridRetriever:
    """``retrieve(question, k)`` -> ranked sentence ``Hit``s from dense and lexical search."""

    def __init__(self, store: Store, embedder: Embedder, config: Config, today: date | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self.today = today
        self._terms_for = None  # the Library the article-term cache belongs to
        self._article_terms: dict[str, set[str]] = {}

    def effective_filters(self, question: str, filters: Filters | None) -> Filters:
        """``filters``, plus the date range of a time phrase in the question when none was given.

        A time phrase restricts dated articles only: undated ones cannot be ruled out.
        """
        filters = filters or Filters()
        if filters.date_from or filters.date_to:
            return filters
        found = date_range(question, self.today)
        if not found:
            return filters
        return Filters(filters.sources, found[0], found[1], filters.article_ids, undated=True)

    def retrieve(self, question: str, k: int = 10, filters: Filters | None = None, vector: np.ndarray | None = None) -> list[Hit]:
        filters = self.effective_filters(question, filters)
        lib = self.store.library()
        if not lib.order:
            return []
        self.store.ensure_lexical()
        cfg = self.config
        if vector is None:
            vector = self.embedder.embed([question])[0]

        cands: dict[tuple[str, int], _Candidate] = {}
        for rank, (meta, sim) in enumerate(self.store.query(vector, cfg.candidates, filters)):
            idx = [int(x) for x in meta["sentences"].split(",")] if cfg.granularity == "chunk" else [meta["anchor"]]
            for i in idx:
                c = cands.setdefault((meta["article_id"], i), _Candidate(meta["article_id"], i))
                if c.dense is None:
                    c.dense, c.dense_rank = sim, rank

        mask = None
        allowed = lib.allowed(filters)
        if allowed is not None:
            mask = np.fromiter((a in allowed for a, _ in lib.order), dtype=np.float32, count=len(lib.order))
        for rank, (doc, score) in enumerate(self.store.lexical.search(question, cfg.candidates, mask)):
            a, i = lib.order[doc]
            c = cands.setdefault((a, i), _Candidate(a, i))
            c.bm25, c.bm25_rank = score, rank

        if not cands:
            return []
        for c in cands.values():
            c.score = sum(1.0 / (RRF_K + r) for r in (c.dense_rank, c.bm25_rank) if r is not None)
        ranked = sorted(cands.values(), key=lambda c: -c.score)
        if cfg.rerank:
            ranked = self._rescore(question, vector, self._expand(ranked, cands))
        return self._hits(self._dedup(ranked, k), k)

    def _expand(self, ranked: list[_Candidate], cands: dict) -> list[_Candidate]:
        """Add every sentence of the best few articles: the answer often sits in the right story
        but in a sentence too unlike the question ("The old law, dating from 1945, ...") for
        either search to rank it."""
        if self.config.expand_articles <= 0:
            return ranked
        lib = self.store.library()
        top: list[str] = []
        for c in ranked:
            if c.article_id not in top:
                top.append(c.article_id)
                if len(top) >= self.config.expand_articles:
                    break
        for article_id in top:
            for s in lib.sentences[article_id]:
                if (article_id, s.index) not in cands:
                    cands[(article_id, s.index)] = _Candidate(article_id, s.index)
                    ranked.append(cands[(article_id, s.index)])
        return ranked

    def _rescore(self, question: str, vector: np.ndarray, ranked: list[_Candidate]) -> list[_Candidate]:
        lib = self.store.library()
        self._fill_dense(vector, ranked)
        top_bm25 = max((c.bm25 for c in ranked), default=0.0) or 1.0
        q_terms = terms(question)
        kind = answer_type(question)
        article_sim = self._article_similarity(vector, {c.article_id for c in ranked})
        w_dense, w_bm25, w_cov, w_title, w_type, w_article, w_article_dense = self.config.rerank_weights
        kept = []
        for c in ranked:
            text = lib.sentence(c.article_id, c.index).text
            if text == lib.articles[c.article_id].title:
                continue  # a headline names the story but rarely answers; it scores through the title terms
            kept.append(c)
            if q_terms:
                cov = len(q_terms & terms(text)) / len(q_terms)
                tcov = len(q_terms & terms(lib.articles[c.article_id].title)) / len(q_terms)
                acov = len(q_terms & self._terms_of_article(c.article_id)) / len(q_terms)
            else:
                cov = tcov = acov = 0.0
            c.score = (
                w_dense * (c.dense or 0.0)
                + w_bm25 * c.bm25 / top_bm25
                + w_cov * cov
                + w_title * tcov
                + w_type * has_answer_type(kind, text)
                # Does the question's story match the sentence's article? Sentences often say
                # "the firm" where the question names it; the article as a whole does not.
                + w_article * acov
                + w_article_dense * article_sim.get(c.article_id, 0.0)
            )
        return sorted(kept, key=lambda c: -c.score)

    def _terms_of_article(self, article_id: str) -> set[str]:
        lib = self.store.library()
        if self._terms_for is not lib:  # the index changed: start a fresh cache
            self._terms_for, self._article_terms = lib, {}
        found = self._article_terms.get(article_id)
        if found is None:
            a = lib.articles[article_id]
            found = self._article_terms[article_id] = terms(a.title + " " + a.text)
        return found

    def _article_similarity(self, vector: np.ndarray, article_ids: set[str]) -> dict[str, float]:
        """Cosine similarity of the question to each article's mean vector."""
        if not article_ids or not self.config.rerank_weights[6]:
            return {}
        got = self.store.articles.get(ids=sorted(article_ids), include=["embeddings"])
        return {i: float(np.dot(vector, e)) for i, e in zip(got["ids"], got["embeddings"])}

    def _fill_dense(self, vector: np.ndarray, ranked: list[_Candidate]) -> None:
        """Dense similarity for lexical-only candidates, from their stored vectors (fetched by id)."""
        missing = [c for c in ranked if c.dense is None]
        if not missing or self.config.granularity == "chunk":
            for c in missing:
                c.dense = 0.0
            return
        lib = self.store.library()
        ids = {}
        for article_id in {c.article_id for c in missing}:
            # Chunk ids are content hashes, so they can be recomputed instead of searched for.
            for ch in chunk(lib.articles[article_id], lib.sentences[article_id], self.config):
                ids[(article_id, ch.anchor)] = ch.id
        wanted = {(c.article_id, c.index): ids.get((c.article_id, c.index)) for c in missing}
        got = self.store.chunks.get(ids=[i for i in wanted.values() if i], include=["embeddings"])
        vectors = dict(zip(got["ids"], got["embeddings"]))
        for c in missing:
            emb = vectors.get(wanted[(c.article_id, c.index)])
            c.dense = float(np.dot(vector, emb)) if emb is not None else 0.0

    def _dedup(self, ranked: list[_Candidate], k: int) -> list[tuple[_Candidate, list[str]]]:
        """Keep the best of each group of (near-)identical sentences; remember the other articles."""
        lib = self.store.library()
        kept: list[tuple[_Candidate, list[str], set[str], str]] = []
        for c in ranked:
            text = lib.sentence(c.article_id, c.index).text
            key = " ".join(_WORD.findall(text.lower()))
            toks = set(key.split())
            for other, also, otoks, okey in kept:
                if key == okey or (toks and len(toks & otoks) / len(toks | otoks) >= self.config.dedup_threshold):
                    if c.article_id != other.article_id and c.article_id not in also:
                        also.append(c.article_id)
                    break
            else:
                # Past k new sentences are not needed, but later copies of kept ones still add sources.
                if len(kept) < k:
                    kept.append((c, [], toks, key))
        return [(c, also) for c, also, _, _ in kept]

    def _hits(self, kept: list[tuple[_Candidate, list[str]]], k: int) -> list[Hit]:
        lib = self.store.library()
        n = self.config.context
        hits = []
        for c, also in kept[:k]:
            sents = lib.sentences[c.article_id]
            s = sents[c.index]
            a = lib.articles[c.article_id]
            hits.append(
                Hit(
                    article_id=c.article_id,
                    sentence_index=c.index,
                    start=s.start,
                    end=s.end,
                    text=s.text,
                    score=c.score,
                    title=a.title,
                    source=a.source,
                    published=a.published,
                    before=tuple(x.text for x in sents[max(0, c.index - n) : c.index]),
                    after=tuple(x.text for x in sents[c.index + 1 : c.index + 1 + n]),
                    also_in=tuple(also),
                    scores={"dense": c.dense or 0.0, "bm25": c.bm25},
                )
            )
        return hits
