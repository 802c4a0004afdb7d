"""Find the sentences that answer a question: dense + BM25 candidates, fusion, second stage, dedup.

1. Candidates: the nearest chunks in Chroma (dense, the shipped embedder) and the best BM25
   sentences (bm25s), both under the same filters.
2. Fusion: reciprocal rank fusion of the two ranked lists.
3. Second stage (``Config.rerank``): every fused candidate is rescored by a weighted sum of
   its dense similarity, its normalised BM25 score, how many of the question's terms the
   sentence and its article title carry, and answer-type cues: a pattern (a number for "how
   many", a date for "when", a name for "who", a cause for "why") and a named entity of the
   kind asked for (a person for "Which Blackburn player", a place for "where"; spaCy, tagged
   at ingest). Weights (``Config.rerank_weights``) were fitted on eval/questions/bbc-train.jsonl,
   bbc-dev.jsonl and bbc-dev2.jsonl (``eval/tune.py --fit``). What a question asks for is read
   in rag/questions.py. Then the reader (rag/reader.py, a cross-encoder that reads question and
   sentence together) scores the best few, and its score is added with ``Config.reader_weight``;
   it is skipped when the best candidate already leads by ``Config.reader_skip_margin`` (for an
   answer, by ``Config.answer_reader_skip_margin``: asking has more time than retrieving).
4. Near-identical sentences from different articles collapse into one hit (``also_in``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from rag.chunking import chunk
from rag.config import Config
from rag.embedding import Embedder
from rag.questions import (ENTITY_LABELS, WORD, answer_type, asked_unit, entity_kind, has_answer_type, has_new_answer,
                           has_new_entity, has_unit_figure, question_words, sub_questions, terms)
from rag.reader import Reader, passage_in
from rag.store import Library, Store
from rag.timephrases import date_range
from rag.types import Filters, Hit

_CACHE_LIMIT = 200_000  # cached sentences (term sets) before the caches start over
RRF_K = 60  # the constant from Cormack et al. (2009); damps the head of each list


@dataclass
class _Candidate:
    article_id: str
    index: int
    dense: float | None = None
    dense_rank: int | None = None
    bm25: float = 0.0
    bm25_rank: int | None = None
    score: float = 0.0
    reader: float | None = None  # the reader's score, for the best few candidates only


class HybridRetriever:
    """``retrieve(question, k)`` -> ranked sentence ``Hit``s from dense and lexical search."""

    def __init__(self, store: Store, embedder: Embedder, config: Config, today: date | None = None,
                 reader: Reader | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self.reader = reader  # None: the second stage is the weighted features alone
        self.today = today
        self._cache: _IndexCache | None = None

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

    def retrieve(self, question: str, k: int = 10, filters: Filters | None = None, vector: np.ndarray | None = None,
                 for_answer: bool = False) -> list[Hit]:
        """The ``k`` best sentences for ``question``; a compound question is searched part by part.

        ``for_answer``: rank for an answer, which affords more time: more candidates
        (``Config.answer_candidates``) and more of the reader (``Config.answer_reader_skip_margin``).

        "How many X ..., and why did Y ...?" asks two things, often answered in two articles: each
        part is retrieved on its own (with its own answer type), and the lists are interleaved,
        the better-scoring hit first at each rank. ``Hit.part`` says which part found a hit.
        """
        parts = sub_questions(question)
        if len(parts) == 1:
            return self._retrieve(question, k, filters, vector, for_answer)
        vectors = self.embedder.embed(parts)
        lists = [[replace(h, part=i) for h in self._retrieve(p, k, filters, v, for_answer)]
                 for i, (p, v) in enumerate(zip(parts, vectors))]
        merged, seen = [], set()
        for rank in range(k):
            at_rank = [hits[rank] for hits in lists if rank < len(hits)]
            for h in sorted(at_rank, key=lambda h: -h.score):
                if (h.article_id, h.sentence_index) not in seen:
                    seen.add((h.article_id, h.sentence_index))
                    merged.append(h)
        return merged[:k]

    def _retrieve(self, question: str, k: int, filters: Filters | None, vector: np.ndarray | None,
                  for_answer: bool = False) -> list[Hit]:
        filters = self.effective_filters(question, filters)
        lib = self.store.library()
        if not lib.order:
            return []
        self.store.ensure_lexical()
        cfg = self.config
        n_candidates = cfg.answer_candidates if for_answer else cfg.candidates
        if vector is None:
            vector = self.embedder.embed([question])[0]

        allowed = lib.allowed(filters)
        cands: dict[tuple[str, int], _Candidate] = {}
        for rank, (article_id, idx, sim) in enumerate(self._dense(vector, n_candidates, filters, allowed)):
            for i in idx:
                c = cands.setdefault((article_id, i), _Candidate(article_id, i))
                if c.dense is None:
                    c.dense, c.dense_rank = sim, rank

        mask = None
        if allowed is not None:
            mask = np.fromiter((a in allowed for a, _ in lib.order), dtype=np.float32, count=len(lib.order))
        for rank, (doc, score) in enumerate(self.store.lexical.search(question, n_candidates, mask)):
            a, i = lib.order[doc]
            c = cands.setdefault((a, i), _Candidate(a, i))
            c.bm25, c.bm25_rank = score, rank

        if not cands:
            return []
        for c in cands.values():
            c.score = sum(1.0 / (RRF_K + r) for r in (c.dense_rank, c.bm25_rank) if r is not None)
        ranked = sorted(cands.values(), key=lambda c: -c.score)
        if cfg.rerank:
            margin = cfg.answer_reader_skip_margin if for_answer else cfg.reader_skip_margin
            ranked = self._rescore(question, vector, self._expand(ranked, cands), margin)
        return self._hits(self._dedup(ranked, k), k)

    def _dense(self, vector: np.ndarray, n: int, filters: Filters, allowed: set[str] | None) -> list[tuple[str, list[int], float]]:
        """(article id, sentence indices, similarity) of the ``n`` nearest chunks that pass
        ``filters`` (``allowed``: the article ids that do).

        Chroma's filtered search scans metadata and is slow on a big index, so when the filter
        keeps most articles (or all: a time phrase over undated articles) search unfiltered and
        drop the rest; only a narrow filter goes to Chroma's ``where`` clause.
        """
        total = len(self.store.library().articles)
        if allowed is None or len(allowed) == total:
            return self._nearest(vector, n, Filters())
        if len(allowed) >= total // 2:
            got = [x for x in self._nearest(vector, 3 * n, Filters()) if x[0] in allowed]
            if len(got) >= n:
                return got[:n]
        return self._nearest(vector, n, filters)

    def _nearest(self, vector: np.ndarray, n: int, filters: Filters) -> list[tuple[str, list[int], float]]:
        """Chroma's ``n`` nearest chunks, located by their ids when the caches know them all."""
        located = self._index().located
        out = []
        for chunk_id, meta, sim in self.store.query(vector, n, filters, metadata=not located):
            if meta:
                at = meta["sentences"].split(",") if self.config.granularity == "chunk" else [meta["anchor"]]
                out.append((meta["article_id"], [int(x) for x in at], sim))
            elif chunk_id in located:  # else written after this library was read: seen next time
                article_id, anchor = located[chunk_id]
                out.append((article_id, [anchor], sim))
        return out

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

    FEATURES = ("dense", "bm25", "sentence terms", "title terms", "answer type", "article terms",
                "article dense", "new answer", "unit", "lead", "previous terms", "entity answer", "reason")

    def features(self, question: str, vector: np.ndarray, ranked: list[_Candidate],
                 every: bool = False) -> tuple[list[_Candidate], np.ndarray]:
        """The second stage's view of each candidate: one row of ``FEATURES`` per kept candidate.

        Headlines are dropped: a headline names the story but rarely answers; it scores through
        the title terms instead. A feature whose weight is 0 is left at 0 unless ``every`` (for
        fitting the weights, eval/tune.py): the second stage scores about 100 candidates a
        question when retrieving and 200 when answering, and each skipped search saves time on each.
        """
        cache = self._index()
        lib = cache.lib
        need = {name: every or w != 0 for name, w in zip(self.FEATURES, self.config.rerank_weights)}
        self._fill_dense(vector, ranked)
        top_bm25 = max((c.bm25 for c in ranked), default=0.0) or 1.0
        q_terms = terms(question)
        n_q = len(q_terms) or 1
        kind = answer_type(question)
        unit = asked_unit(question)
        wanted = entity_kind(question) if need["entity answer"] else None
        if not ENTITY_LABELS.get(wanted or ""):
            wanted = None  # no entity label answers it: skip looking up each sentence's entities
        asked = question_words(question)
        article_sim = self._article_similarity(vector, {c.article_id for c in ranked}) if need["article dense"] else {}
        per_article: dict[str, tuple] = {}  # what does not change between sentences of one article
        kept, rows = [], []
        for c in ranked:
            art = per_article.get(c.article_id)
            if art is None:
                a = lib.articles[c.article_id]
                art = per_article[c.article_id] = (
                    a, lib.sentences[c.article_id],
                    len(q_terms & cache.title_terms_of(c.article_id)) / n_q,
                    # Does the question's story match the sentence's article? Sentences often say
                    # "the firm" where the question names it; the article as a whole does not.
                    len(q_terms & cache.article_terms_of(c.article_id)) / n_q,
                    article_sim.get(c.article_id, 0.0))
            a, sentences, title_cover, article_cover, sim = art
            text = sentences[c.index].text
            if text == a.title:
                continue
            kept.append(c)
            prev = sentences[c.index - 1].text if c.index > 0 else ""
            prev_terms = cache.sentence_terms_of(c.article_id, c.index - 1) if prev and prev != a.title else ()
            rows.append((
                c.dense or 0.0,
                c.bm25 / top_bm25,
                len(q_terms & cache.sentence_terms_of(c.article_id, c.index)) / n_q,
                title_cover,
                float(need["answer type"] and kind != "reason" and has_answer_type(kind, text)),
                article_cover,
                sim,
                # The lead sentence restates the story the question is about; the answer is the
                # sentence that adds what the question lacks (a figure, a name, a date).
                float(need["new answer"] and has_new_answer(kind, text, asked)),
                float(need["unit"] and unit is not None and has_unit_figure(unit, text)),
                1.0 / (1 + c.index),
                len(q_terms.intersection(prev_terms)) / n_q,
                float(wanted is not None and has_new_entity(wanted, [(a.text[e.start:e.end], e.label)
                                                                   for e in lib.entities_in(c.article_id, c.index)], asked)),
                # "Why ...?" is answered by the sentence that gives a cause ("due to", "because").
                float(need["reason"] and kind == "reason" and has_answer_type(kind, text)),
            ))
        return kept, np.asarray(rows, dtype=np.float64).reshape(len(kept), len(self.FEATURES))

    def _rescore(self, question: str, vector: np.ndarray, ranked: list[_Candidate],
                 margin: float | None) -> list[_Candidate]:
        """Rank by the weighted features, then add the reader's score unless the best leads by over ``margin``."""
        kept, x = self.features(question, vector, ranked)
        for c, s in zip(kept, x @ np.asarray(self.config.rerank_weights, dtype=np.float64)):
            c.score = float(s)
        kept = sorted(kept, key=lambda c: -c.score)
        n = self.config.reader_candidates
        clear_lead = margin is not None and len(kept) > 1 and kept[0].score - kept[1].score > margin
        if self.reader is not None and n > 0 and kept and not clear_lead:
            # The reader is the costly part (about 12 ms a sentence on two cores), so it reads only the
            # best few: reading 7 ranks as well as reading 10 on the dev sets (eval/README.md, session 6).
            lib = self._index().lib
            top = kept[:n]
            context = getattr(self.reader, "context", False)
            read = self.reader.score(question, [passage_in(lib, c.article_id, c.index, context) for c in top])
            for c, p in zip(top, read):
                c.reader = float(p)
                c.score += self.config.reader_weight * c.reader
            kept = sorted(kept, key=lambda c: -c.score)
        return kept

    def _index(self) -> _IndexCache:
        """The cache for the index as it is now: a new Library means the index changed."""
        lib = self.store.library()
        if self._cache is None or self._cache.lib is not lib or self._cache.outgrown():
            self._cache = _IndexCache(lib, self.store, self.config)
        return self._cache

    def _article_similarity(self, vector: np.ndarray, article_ids: set[str]) -> dict[str, float]:
        """Cosine similarity of the question to each article's mean vector."""
        if not article_ids:
            return {}
        found = self._index().article_vectors_of(article_ids)
        return {i: float(np.dot(vector, e)) for i, e in found.items()}

    def _fill_dense(self, vector: np.ndarray, ranked: list[_Candidate]) -> None:
        """Dense similarity for lexical-only candidates, from their stored vectors."""
        missing = [c for c in ranked if c.dense is None]
        if not missing or self.config.granularity == "chunk":
            for c in missing:
                c.dense = 0.0
            return
        cache = self._index()
        wanted = {(c.article_id, c.index): cache.chunk_ids_of(c.article_id).get(c.index) for c in missing}
        found = cache.vectors_of([i for i in wanted.values() if i])
        for c in missing:
            emb = found.get(wanted[(c.article_id, c.index)])
            c.dense = float(np.dot(vector, emb)) if emb is not None else 0.0

    def _dedup(self, ranked: list[_Candidate], k: int) -> list[tuple[_Candidate, list[str]]]:
        """Keep the best of each group of (near-)identical sentences; remember the other articles."""
        threshold = self.config.dedup_threshold
        cache = self._index()
        kept: list[tuple[_Candidate, list[str], frozenset[str], str]] = []
        for c in ranked:
            key, toks = cache.dedup_key(c.article_id, c.index)
            for other, also, otoks, okey in kept:
                # Jaccard similarity is at most the ratio of the set sizes: most pairs stop there.
                if key == okey or (toks and min(len(toks), len(otoks)) >= threshold * max(len(toks), len(otoks))
                                   and len(toks & otoks) / len(toks | otoks) >= threshold):
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
                    scores={"dense": c.dense or 0.0, "bm25": c.bm25, **({"reader": c.reader} if c.reader is not None else {})},
                    entities=tuple(lib.entities_in(c.article_id, c.index)),
                )
            )
        return hits


def _memo(table: dict, key, make):
    """``table[key]``, computed by ``make()`` the first time."""
    found = table.get(key)
    if found is None:
        found = table[key] = make()
    return found


class _IndexCache:
    """What the second stage reads about one version of the index (a ``Library``), kept in memory.

    An index of up to ``_CACHE_LIMIT`` sentences is read all at once, stored vectors included:
    for the 41,369 BBC sentences that takes about 3 s and 170 MiB, once per change of the index,
    and saves about 40 ms on every question whose candidates were not seen before (terms 20 ms,
    vectors 14 ms, chunk metadata 6 ms). A larger index fills it as questions need it.
    """

    def __init__(self, lib: Library, store: Store, config: Config) -> None:
        self.lib, self.store, self.config = lib, store, config
        self.article_terms: dict[str, set[str]] = {}
        self.title_terms: dict[str, set[str]] = {}
        self.sentence_terms: dict[tuple[str, int], set[str]] = {}
        self.dedup_keys: dict[tuple[str, int], tuple[str, frozenset[str]]] = {}
        self.chunk_ids: dict[str, dict[int, str]] = {}  # article id -> anchor sentence -> chunk id
        self.located: dict[str, tuple[str, int]] = {}  # chunk id -> (article id, anchor); whole index only
        self.vectors: dict[str, np.ndarray] = {}  # chunk id -> stored vector
        self.article_vectors: dict[str, np.ndarray] = {}
        if len(lib.order) <= _CACHE_LIMIT:
            self._fill()

    def _fill(self) -> None:
        lib = self.lib
        self.article_terms = {i: terms(a.title + " " + a.text) for i, a in lib.articles.items()}
        self.sentence_terms = {(i, s.index): terms(s.text) for i, found in lib.sentences.items() for s in found}
        self.article_vectors = self.store.vectors(self.store.articles, list(lib.articles))
        if self.config.granularity != "chunk":  # chunk ids are only looked up for single sentences
            self.chunk_ids = {i: self.chunk_ids_of(i) for i in lib.sentences}
            self.located = {cid: (i, anchor) for i, ids in self.chunk_ids.items() for anchor, cid in ids.items()}
            self.vectors = self.store.vectors(self.store.chunks, list(self.located))

    def outgrown(self) -> bool:
        """Filled past its size cap by questions on a big index: time to start over (bounded memory)."""
        return max(len(self.sentence_terms), len(self.vectors)) > _CACHE_LIMIT

    def article_terms_of(self, article_id: str) -> set[str]:
        a = self.lib.articles[article_id]
        return _memo(self.article_terms, article_id, lambda: terms(a.title + " " + a.text))

    def title_terms_of(self, article_id: str) -> set[str]:
        return _memo(self.title_terms, article_id, lambda: terms(self.lib.articles[article_id].title))

    def sentence_terms_of(self, article_id: str, index: int) -> set[str]:
        return _memo(self.sentence_terms, (article_id, index), lambda: terms(self.lib.sentence(article_id, index).text))

    def dedup_key(self, article_id: str, index: int) -> tuple[str, frozenset[str]]:
        """A sentence's words, joined (identical sentences) and as a set (near-identical ones)."""
        def make():
            key = " ".join(WORD.findall(self.lib.sentence(article_id, index).text.lower()))
            return key, frozenset(key.split())
        return _memo(self.dedup_keys, (article_id, index), make)

    def chunk_ids_of(self, article_id: str) -> dict[int, str]:
        """Anchor sentence -> chunk id: ids are content hashes, so they are recomputed, not searched for."""
        def make():
            return {ch.anchor: ch.id for ch in chunk(self.lib.articles[article_id], self.lib.sentences[article_id], self.config)}
        return _memo(self.chunk_ids, article_id, make)

    def vectors_of(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these chunks (those the index has), fetched from Chroma once."""
        self.vectors.update(self.store.vectors(self.store.chunks, [i for i in chunk_ids if i not in self.vectors]))
        return {i: self.vectors[i] for i in chunk_ids if i in self.vectors}

    def article_vectors_of(self, article_ids: set[str]) -> dict[str, np.ndarray]:
        """Stored mean vectors of these articles, fetched from Chroma once."""
        unknown = sorted(i for i in article_ids if i not in self.article_vectors)
        self.article_vectors.update(self.store.vectors(self.store.articles, unknown))
        return {i: self.article_vectors[i] for i in article_ids if i in self.article_vectors}
