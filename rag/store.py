"""Where the index lives: Chroma (embedded on disk, or a server) plus the BM25 state beside it.

Two Chroma collections per indexing granularity:

- ``<name>-chunks``: one record per chunk, with its vector (always computed by us), its text,
  and metadata (article id, anchor sentence, sentence indices, offsets, source, date).
- ``<name>-articles``: one record per article, holding its text, metadata, content hash and
  sentence offsets. It is written *after* the article's chunks, so it doubles as the commit
  marker that makes a killed ingest recoverable (see ``rag/ingest.py``). Its named entities
  (``rag/entities.py``) are kept there too, as ``[start, end, label]`` triples.

The lexical (BM25, via bm25s) index covers every sentence. It is saved under the index
folder, stamped with a fingerprint of the article manifest, and rebuilt only when that
fingerprint no longer matches what Chroma holds.

Chroma writes to its folder even to read, so an index folder the process cannot write to (a
read-only mount, say) is served from a temporary copy; ingesting into it is refused.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from rag.config import Config
from rag.embedding import model_tag
from rag.types import Article, Chunk, Entity, Filters, Sentence, content_hash

_BATCH = 1000  # records per Chroma call; well under its max batch size


def _date_key(iso: str | None) -> int | None:
    """YYYY-MM-DD as an int (20041231): Chroma compares numbers, not strings."""
    return int(iso.replace("-", "")[:8]) if iso else None


@dataclass(frozen=True)
class Library:
    """Every indexed article with its sentences, loaded in memory for context, filters and BM25."""

    articles: dict[str, Article]
    sentences: dict[str, list[Sentence]]
    order: list[tuple[str, int]]  # (article id, sentence index) for BM25 document n
    entities: dict[str, list[Entity]]  # per article, by start offset; empty when not tagged

    def sentence(self, article_id: str, index: int) -> Sentence:
        return self.sentences[article_id][index]

    def entities_in(self, article_id: str, index: int) -> list[Entity]:
        """The named entities inside one sentence."""
        found = self.entities.get(article_id)
        if not found:
            return []
        s = self.sentences[article_id][index]
        lo = bisect.bisect_left(found, s.start, key=lambda e: e.start)
        hi = bisect.bisect_left(found, s.end, key=lambda e: e.start)
        return found[lo:hi]

    def allowed(self, filters: Filters) -> set[str] | None:
        """Ids of the articles that pass ``filters`` (None = all)."""
        if not filters:
            return None
        lo, hi = _date_key(filters.date_from), _date_key(filters.date_to)
        ids = set(filters.article_ids) if filters.article_ids else None
        out = set()
        for a in self.articles.values():
            if ids is not None and a.id not in ids:
                continue
            if filters.sources and a.source not in filters.sources:
                continue
            if lo or hi:
                d = _date_key(a.published)
                if d is None:
                    if not filters.undated:
                        continue
                elif (lo and d < lo) or (hi and d > hi):
                    continue
            out.add(a.id)
        return out


class LexicalIndex:
    """BM25 over all sentences (bm25s with an English stemmer), persisted with the index."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._bm25 = None
        self._stemmer = None

    def _tokenize(self, texts: list[str], ids: bool):
        import bm25s
        import Stemmer

        if self._stemmer is None:
            self._stemmer = Stemmer.Stemmer("english")
        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False, return_ids=ids)

    def fingerprint(self) -> str | None:
        f = self.folder / "fingerprint"
        return f.read_text() if f.exists() else None

    def build(self, library: Library, fingerprint: str) -> None:
        """Index every sentence of ``library`` and save, replacing what was there.

        The new index is in use as soon as it is built: if saving fails (OSError), it still serves
        from memory and the saved one is left as it was.
        """
        import bm25s

        texts = [
            f"{library.articles[a].title} {library.sentence(a, i).text}" if i == 0 else library.sentence(a, i).text
            for a, i in library.order
        ]
        bm25 = bm25s.BM25()
        if texts:
            bm25.index(self._tokenize(texts, ids=True), show_progress=False)
        self._bm25 = bm25 if texts else None
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if texts:
                bm25.save(tmp)
            (tmp / "order.json").write_text(json.dumps(library.order))
            (tmp / "fingerprint").write_text(fingerprint)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # give back what a full disk let us write
            raise
        # Swap in the finished folder so a crash never leaves a half-written index behind.
        shutil.rmtree(self.folder, ignore_errors=True)
        tmp.rename(self.folder)

    def load(self) -> list[tuple[str, int]]:
        import bm25s

        order = [tuple(x) for x in json.loads((self.folder / "order.json").read_text())]
        self._bm25 = bm25s.BM25.load(self.folder) if order else None
        return order

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(document number, score) of the best ``k`` sentences with a positive score."""
        if self._bm25 is None or k <= 0:
            return []
        tokens = self._tokenize([query], ids=False)
        if not tokens[0]:
            return []
        k = min(k, self._bm25.scores["num_docs"])
        docs, scores = self._bm25.retrieve(tokens, k=k, weight_mask=mask, show_progress=False, n_threads=0)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


class Store:
    """Chroma collections and the lexical index for one config; nothing connects until used."""

    def __init__(self, config: Config) -> None:
        self.config = config
        g = config.granularity
        suffix = {"sentence": "s", "window": f"w{config.window}", "chunk": f"c{config.chunk_sentences}"}.get(g, g)
        self.name = f"{config.collection}-{suffix}{'t' if config.embed_title else ''}{model_tag(config.model_path)}"
        self._client = None
        self._chunks = None
        self._articles = None
        self._library: Library | None = None
        self._lexical_synced = False
        self._copy: tempfile.TemporaryDirectory | None = None  # where a read-only index is served from
        self.lexical = LexicalIndex(self._local_dir() / "lexical" / self.name)

    def _local_dir(self) -> Path:
        if not self.config.chroma_url:
            return Path(self.config.index)
        u = urlparse(self.config.chroma_url)
        return Path(self.config.index) / "servers" / f"{u.hostname}_{u.port or 8000}"

    @property
    def client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False)
            if self.config.chroma_url:
                u = urlparse(self.config.chroma_url)
                self._client = chromadb.HttpClient(
                    host=u.hostname or "127.0.0.1", port=u.port or 8000, ssl=u.scheme == "https", settings=settings
                )
            else:
                path = Path(self.config.index)
                if path.is_dir() and not os.access(path, os.W_OK):
                    path = self._writable_copy(path)
                path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        return self._client

    def _writable_copy(self, path: Path) -> Path:
        """A temporary copy of a read-only index for Chroma to open (it writes even to read)."""
        self._copy = tempfile.TemporaryDirectory(prefix="newsdesk-readonly-index-")
        copy = Path(self._copy.name) / "index"
        shutil.copytree(path, copy, ignore=shutil.ignore_patterns("lexical", "*.lock", "*.ingesting"))
        size = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file())
        warnings.warn(
            f"the index folder {path} is read-only: serving a copy ({size / 2**20:,.1f} MB in {copy}); "
            "articles cannot be added until it is writable",
            RuntimeWarning, stacklevel=3,
        )
        return copy

    def _collection(self, kind: str):
        return self.client.get_or_create_collection(
            f"{self.name}-{kind}", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    @property
    def chunks(self):
        if self._chunks is None:
            self._chunks = self._collection("chunks")
        return self._chunks

    @property
    def articles(self):
        if self._articles is None:
            self._articles = self._collection("articles")
        return self._articles

    # --- writing -------------------------------------------------------------------------

    def manifest(self) -> dict[str, str]:
        """Article id -> content hash of every fully indexed article."""
        out = {}
        for batch in self._all(self.articles, ["metadatas"]):
            for id_, meta in zip(batch["ids"], batch["metadatas"]):
                out[id_] = meta["hash"]
        return out

    def untagged(self) -> list[str]:
        """Ids of articles indexed before entity tagging existed (no ``entities`` field)."""
        return [i for b in self._all(self.articles, ["metadatas"]) for i, m in zip(b["ids"], b["metadatas"])
                if "entities" not in m]

    def set_entities(self, article_ids: list[str], entities: list[list[Entity]]) -> None:
        """Store the named entities of already indexed articles (their vectors are left alone)."""
        got = self.articles.get(ids=article_ids, include=["metadatas"])
        metas = dict(zip(got["ids"], got["metadatas"]))
        ids = [i for i in article_ids if i in metas]
        by_id = dict(zip(article_ids, entities))
        if ids:
            self.articles.update(ids=ids, metadatas=[{**metas[i], "entities": _entities_json(by_id[i])} for i in ids])
        self._changed()

    def chunk_article_ids(self) -> set[str]:
        """Article ids that have chunks (finds leftovers of an interrupted ingest)."""
        return {m["article_id"] for b in self._all(self.chunks, ["metadatas"]) for m in b["metadatas"]}

    def write(self, article: Article, sentences: list[Sentence], chunks: list[Chunk], vectors: np.ndarray,
              entities: list[Entity] | None = None) -> None:
        """Replace everything stored for ``article`` with these chunks; the article record goes last.

        ``entities`` None means "not tagged" (a later ingest with a tagger fills them in).
        """
        self.delete_chunks(article.id)
        date = _date_key(article.published)
        for i in range(0, len(chunks), _BATCH):
            part = chunks[i : i + _BATCH]
            metas = []
            for c in part:
                m = {
                    "article_id": c.article_id,
                    "anchor": c.anchor,
                    "sentences": ",".join(map(str, c.sentence_indices)),
                    "start": c.start,
                    "end": c.end,
                    "source": article.source,
                    "published": date or 0,  # 0 = undated, so date filters can choose to keep them
                }
                metas.append(m)
            self.chunks.add(
                ids=[c.id for c in part], embeddings=vectors[i : i + _BATCH], documents=[c.text for c in part], metadatas=metas
            )
        meta = {
            "hash": article.hash,
            "title": article.title,
            "source": article.source,
            "url": article.url,
            "spans": json.dumps([[s.start, s.end] for s in sentences]),
        }
        if entities is not None:
            meta["entities"] = _entities_json(entities)
        if article.published:
            meta["published"] = article.published
            meta["published_key"] = date
        mean = vectors.mean(axis=0) if len(vectors) else np.ones(vectors.shape[1] or 384, dtype=np.float32)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        self.articles.upsert(ids=[article.id], embeddings=[mean], documents=[article.text], metadatas=[meta])
        self._changed()

    def delete_chunks(self, article_id: str) -> None:
        self._changed()
        self.chunks.delete(where={"article_id": article_id})

    def delete(self, article_id: str) -> None:
        """Remove an article: its record first, so an interrupted delete is retried next time."""
        self._changed()
        self.articles.delete(ids=[article_id])
        self.delete_chunks(article_id)

    def _changed(self) -> None:
        """Drop what was read from the index; the BM25 index must follow before its next search.

        Without this, a run that fails half-way (a full disk) would leave BM25 document numbers
        pointing at the sentences of the old article list.
        """
        self._library = None
        self._lexical_synced = False

    # --- reading -------------------------------------------------------------------------

    @staticmethod
    def _all(collection, include: list[str]):
        offset = 0
        while True:
            batch = collection.get(include=include, limit=5000, offset=offset)
            if not batch["ids"]:
                return
            yield batch
            offset += len(batch["ids"])

    def library(self) -> Library:
        """All indexed articles and sentences (cached until the next write)."""
        if self._library is None:
            articles, sentences, entities = {}, {}, {}
            for batch in self._all(self.articles, ["documents", "metadatas"]):
                for id_, text, m in zip(batch["ids"], batch["documents"], batch["metadatas"]):
                    articles[id_] = Article(
                        id=id_, text=text, title=m.get("title", ""), source=m.get("source", ""),
                        published=m.get("published"), url=m.get("url", ""),
                    )
                    sentences[id_] = [
                        Sentence(id_, i, s, e, text[s:e]) for i, (s, e) in enumerate(json.loads(m["spans"]))
                    ]
                    entities[id_] = sorted((Entity(*e) for e in json.loads(m.get("entities") or "[]")),
                                           key=lambda e: e.start)
            order = [(a, s.index) for a in sorted(sentences) for s in sentences[a]]
            self._library = Library(articles, sentences, order, entities)
        return self._library

    def fingerprint(self) -> str:
        """Changes whenever the set of indexed articles or any of their contents changes."""
        return content_hash(*(f"{k}:{v}" for k, v in sorted(self.manifest().items())))

    def ensure_lexical(self) -> None:
        """Load (or, if stale, rebuild) the BM25 index once per Store and after every change.

        A rebuild that cannot be saved (read-only or full disk) is used from memory: questions are
        still answered.
        """
        if not self._lexical_synced:
            try:
                self.sync_lexical()
            except OSError as e:
                warnings.warn(f"could not save the BM25 index in {self.lexical.folder} ({e}); using it from memory",
                              RuntimeWarning, stacklevel=2)

    def sync_lexical(self, force: bool = False) -> bool:
        """Make the BM25 index match Chroma: load it when current, rebuild when stale. True if rebuilt."""
        self._lexical_synced = True
        fp = self.fingerprint()
        if not force and self.lexical.fingerprint() == fp:
            order = self.lexical.load()
            if order == self.library().order:
                return False
        self.lexical.build(self.library(), fp)
        return True

    def where(self, filters: Filters) -> dict | None:
        """The Chroma ``where`` clause for ``filters``."""
        clauses = []
        if filters.sources:
            clauses.append({"source": {"$in": list(filters.sources)}})
        if filters.article_ids:
            clauses.append({"article_id": {"$in": list(filters.article_ids)}})
        dated = []
        if filters.date_from:
            dated.append({"published": {"$gte": _date_key(filters.date_from)}})
        if filters.date_to:
            dated.append({"published": {"$lte": _date_key(filters.date_to)}})
        if dated and not filters.undated:
            dated.append({"published": {"$gt": 0}})  # an upper bound alone would admit undated (0)
        if dated:
            in_range = dated[0] if len(dated) == 1 else {"$and": dated}
            clauses.append({"$or": [in_range, {"published": 0}]} if filters.undated else in_range)
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def query(self, vector: np.ndarray, n: int, filters: Filters = Filters(),
              metadata: bool = True) -> list[tuple[str, dict, float]]:
        """(chunk id, chunk metadata, cosine similarity) of the ``n`` nearest chunks.

        ``metadata`` False leaves the metadata empty: fetching it is most of the query's time
        (5.6 of 8.3 ms for 100 chunks on the BBC index), and a caller that knows every chunk id
        does not need it.
        """
        if n <= 0:
            return []
        # Chroma returns fewer results when the collection holds fewer (or none); counting first
        # cost 5 ms a query on the BBC index.
        r = self.chunks.query(query_embeddings=[vector], n_results=n, where=self.where(filters),
                              include=["metadatas", "distances"] if metadata else ["distances"])
        metas = r["metadatas"][0] if metadata else [{}] * len(r["ids"][0])
        return [(i, m, 1.0 - d) for i, m, d in zip(r["ids"][0], metas, r["distances"][0])]

    def vectors(self, collection, ids: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id, of ``collection`` (``chunks`` or ``articles``); unknown ids are left out."""
        # In batches: one get of many ids can pass SQLite's limit on query variables.
        pages = [collection.get(ids=ids[i : i + _BATCH], include=["embeddings"]) for i in range(0, len(ids), _BATCH)]
        return {i: np.asarray(e, dtype=np.float32) for got in pages for i, e in zip(got["ids"], got["embeddings"])}

    def stats(self) -> dict:
        lib = self.library()
        dates = sorted(a.published for a in lib.articles.values() if a.published)
        return {
            "articles": len(lib.articles),
            "sentences": len(lib.order),
            "chunks": self.chunks.count(),
            "sources": sorted({a.source for a in lib.articles.values() if a.source}),
            "date_from": dates[0] if dates else None,
            "date_to": dates[-1] if dates else None,
            "collection": self.name,
            "chroma": self.config.chroma_url or str(self.config.index),
        }


def _entities_json(entities: list[Entity]) -> str:
    return json.dumps([[e.start, e.end, e.label] for e in entities])
