"""Bring the index in line with the corpus folder: add new articles, replace changed ones, drop deleted ones.

Only articles whose content hash differs from the indexed one are split and embedded, so an
unchanged corpus embeds nothing. Each article's chunks are written before its article record,
and a marker file notes a run in progress: a run killed mid-way leaves at most some chunks
without an article record, which the next run removes before redoing that article.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from rag.chunking import chunk
from rag.config import Config
from rag.corpus import Problem, load_folder
from rag.embedding import Embedder
from rag.sentences import SentenceSplitter
from rag.store import Store
from rag.types import Article

_BATCH_CHUNKS = 512  # chunks embedded together; large enough to keep the encoder busy


@dataclass
class IngestReport:
    """What an ingest run did; ``to_dict()`` is the ``ingest --json`` summary."""

    articles: int = 0
    sentences: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    embedded: int = 0  # chunks embedded in this run (0 for an unchanged corpus)
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "articles": self.articles,
            "sentences": self.sentences,
            "chunks": self.chunks,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "embedded": self.embedded,
            "skipped": [p.to_dict() for p in self.skipped],
            "warnings": [p.to_dict() for p in self.warnings],
            "seconds": round(self.seconds, 3),
        }


class IngestBusy(RuntimeError):
    """Another ingest holds the lock on this index."""


def ingest(
    config: Config,
    store: Store,
    embedder: Embedder,
    splitter: SentenceSplitter | None = None,
    progress: bool = False,
    articles: list[Article] | None = None,
) -> IngestReport:
    """Sync the index with ``config.corpus`` (or with ``articles`` when given) and report."""
    t0 = time.perf_counter()
    splitter = splitter or SentenceSplitter()
    state = Path(store._local_dir())
    state.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state / f"{store.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise IngestBusy(f"another ingest is running on this index ({state}); try again when it ends") from None
    try:
        report = IngestReport()
        if articles is None:
            articles, report.skipped, report.warnings = load_folder(config.corpus)
        marker = state / f"{store.name}.ingesting"
        interrupted = marker.exists()
        marker.touch()

        indexed = store.manifest()
        wanted = {a.id for a in articles}
        todo = [a for a in articles if indexed.get(a.id) != a.hash]
        gone = sorted(set(indexed) - wanted)
        for article_id in gone:
            store.delete(article_id)
        if interrupted:
            # A killed run may have left chunks of an article whose record was never written.
            for article_id in store.chunk_article_ids() - (set(indexed) - set(gone)):
                store.delete_chunks(article_id)
        report.removed = len(gone)
        report.added = sum(1 for a in todo if a.id not in indexed)
        report.updated = len(todo) - report.added

        bar = None
        if progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="article", desc="ingest", dynamic_ncols=True)
        batch: list[tuple[Article, list, list]] = []
        pending = 0
        for article in todo:
            sentences = splitter.split(article)
            chunks = chunk(article, sentences, config)
            batch.append((article, sentences, chunks))
            pending += len(chunks)
            if pending >= _BATCH_CHUNKS:
                report.embedded += _flush(batch, store, embedder, bar)
                batch, pending = [], 0
        report.embedded += _flush(batch, store, embedder, bar)
        if bar:
            bar.close()

        if todo or gone or interrupted:
            store.sync_lexical(force=True)
        else:
            store.sync_lexical()
        marker.unlink()

        stats = store.stats()
        report.articles, report.sentences, report.chunks = stats["articles"], stats["sentences"], stats["chunks"]
        report.seconds = time.perf_counter() - t0
        return report
    finally:
        lock.release()


def _flush(batch, store: Store, embedder: Embedder, bar) -> int:
    """Embed the chunks of a batch of articles together, then write article by article."""
    if not batch:
        return 0
    texts = [c.text for _, _, chunks in batch for c in chunks]
    vectors = embedder.embed(texts)
    i = 0
    for article, sentences, chunks in batch:
        store.write(article, sentences, chunks, vectors[i : i + len(chunks)])
        i += len(chunks)
        if bar:
            bar.update(1)
    return len(texts)
