"""Bring the index in line with the corpus folder: add new articles, replace changed ones, drop deleted ones.

Only articles whose content hash differs from the indexed one are split and embedded, so an
unchanged corpus embeds nothing. Each article's chunks are written before its article record,
and a marker file notes a run in progress: a run killed mid-way leaves at most some chunks
without an article record, which the next run removes before redoing that article.

A write that fails (disk full, read-only file system, a file where the folder should be) ends
the run with ``IngestFailed``, whose message names the folder and the cause. Before writing
anything the run checks that the disk has room for what it is about to add, so a full disk
normally refuses the run up front and leaves the index exactly as it was.

With an ``EntityTagger``, each article's named entities are tagged and stored with it; articles
indexed without them (before tagging existed) are tagged in place, without re-embedding.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from rag.chunking import chunk
from rag.config import Config
from rag.corpus import Problem, load_folder
from rag.embedding import Embedder
from rag.entities import EntityTagger
from rag.sentences import SentenceSplitter
from rag.store import Store
from rag.types import Article

_BATCH_CHUNKS = 512  # chunks embedded together; large enough to keep the encoder busy
# Index growth per byte of article text: measured 37-42 bytes at sentence granularity with 384-d
# vectors (Chroma's log, metadata and HNSW segments); 64 leaves headroom for longer vectors.
_BYTES_PER_TEXT_BYTE = 64
_BYTES_PER_TEXT_BYTE_SERVER = 4  # with a Chroma server only the BM25 index grows locally
_MIN_FREE_BYTES = 16 * 2**20  # SQLite journals, the run marker and the BM25 swap need room even for small updates


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


class IngestFailed(RuntimeError):
    """The index could not be written; the message names the folder and the cause (disk full, read-only, ...).

    Articles committed before the failure stay indexed and searchable; once the cause is fixed,
    running ingest again finishes the job (see the module docstring).
    """


def ingest(
    config: Config,
    store: Store,
    embedder: Embedder,
    splitter: SentenceSplitter | None = None,
    progress: bool = False,
    articles: list[Article] | None = None,
    tagger: EntityTagger | None = None,
) -> IngestReport:
    """Sync the index with ``config.corpus`` (or with ``articles`` when given) and report.

    Entities are tagged with ``tagger``, or with ``config.ner_model`` when none is passed
    (``ner_model=None`` or "none": no tagging). A model that cannot be loaded raises
    ``TaggerUnavailable`` before anything is written.
    """
    t0 = time.perf_counter()
    splitter = splitter or SentenceSplitter()
    if tagger is None and config.tags_entities:
        tagger = EntityTagger(config.ner_model)
    report = IngestReport()
    if articles is None:  # read before the index is touched: a corpus problem is not an index failure
        articles, report.skipped, report.warnings = load_folder(config.corpus, config.max_file_bytes)
    state = Path(store._local_dir())
    try:
        state.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(state / f"{store.name}.lock"))
        lock.acquire(timeout=0)
    except Timeout:
        raise IngestBusy(f"another ingest is running on this index ({state}); try again when it ends") from None
    except OSError as e:
        raise _failure(state, e) from e
    try:
        return _sync(config, store, embedder, splitter, tagger, progress, articles, report, state, t0)
    except Exception as e:
        if not _is_storage_error(e):
            raise
        raise _failure(state, e) from e
    finally:
        lock.release()


def _sync(config, store, embedder, splitter, tagger, progress, articles, report, state: Path, t0: float) -> IngestReport:
    """The ingest proper, run while holding the lock."""
    marker = state / f"{store.name}.ingesting"
    interrupted = marker.exists()

    indexed = store.manifest()
    wanted = {a.id for a in articles}
    todo = [a for a in articles if indexed.get(a.id) != a.hash]
    gone = sorted(set(indexed) - wanted)
    if tagger is not None and todo:
        tagger.check()  # a missing model is reported before anything is written
    if todo or gone or interrupted:
        _check_space(store, state, todo)  # before the first write: a full disk leaves the index untouched
        marker.touch()
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
            report.embedded += _flush(batch, store, embedder, tagger, bar)
            batch, pending = [], 0
    report.embedded += _flush(batch, store, embedder, tagger, bar)
    if bar:
        bar.close()
    if tagger is not None:
        _tag_untagged(store, tagger, progress)

    if todo or gone or interrupted:
        store.sync_lexical(force=True)
        marker.unlink()
    else:
        store.sync_lexical()

    stats = store.stats()
    report.articles, report.sentences, report.chunks = stats["articles"], stats["sentences"], stats["chunks"]
    report.seconds = time.perf_counter() - t0
    return report


def _check_space(store: Store, state: Path, todo: list[Article]) -> None:
    """Refuse to start when the disk under the index clearly cannot hold what this run adds."""
    per_byte = _BYTES_PER_TEXT_BYTE_SERVER if store.config.chroma_url else _BYTES_PER_TEXT_BYTE
    lexical = sum(f.stat().st_size for f in store.lexical.folder.glob("*") if f.is_file())
    # The BM25 index is rewritten beside the old one before the swap, so it needs its size again.
    needed = per_byte * sum(len(a.text.encode()) for a in todo) + 2 * lexical + _MIN_FREE_BYTES
    free = shutil.disk_usage(state).free
    if free < needed:
        raise IngestFailed(
            f"not enough disk space for the index at {state}: this run needs about {_mb(needed)}, "
            f"{_mb(free)} is free. Nothing was changed; free some space and run ingest again."
        )


def _is_storage_error(e: BaseException) -> bool:
    """Errors from writing the index (the OS or Chroma), as opposed to bugs or a failing embedder."""
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] == "chromadb"


def _failure(state: Path, e: BaseException) -> IngestFailed:
    """An ``IngestFailed`` that names the index folder and the cause of ``e`` in plain words."""
    return IngestFailed(
        f"could not write the index at {state}: {_cause(state, e)}. Articles indexed before this run are "
        "still there; fix the cause and run ingest again to finish."
    )


def _cause(state: Path, e: BaseException) -> str:
    """Why a write under ``state`` failed, in words a user can act on."""
    code = getattr(e, "errno", None)
    text = str(e).lower()
    # Chroma reports SQLite and segment failures in its own words, so look at the disk as well.
    where = state if state.exists() else next((p for p in state.parents if p.exists()), state)
    try:
        free = shutil.disk_usage(where).free
        read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        free, read_only = None, False
    if code == errno.EROFS or read_only or "readonly database" in text or "read-only file system" in text:
        return f"the file system is read-only ({e})"
    if code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text or "no space left" in text or (
        free is not None and free < _MIN_FREE_BYTES
    ):
        return f"the disk is full ({_mb(free) if free is not None else 'no space'} free; {e})"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied ({e})"
    if code in (errno.ENOTDIR, errno.EEXIST):
        return f"a file is in the way of the index folder ({e})"
    return f"{type(e).__name__}: {e}"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _flush(batch, store: Store, embedder: Embedder, tagger: EntityTagger | None, bar) -> int:
    """Embed (and tag) the chunks of a batch of articles together, then write article by article."""
    if not batch:
        return 0
    texts = [c.embed_text for _, _, chunks in batch for c in chunks]
    vectors = embedder.embed(texts)
    tagged = _tag(tagger, [sentences for _, sentences, _ in batch])
    i = 0
    for (article, sentences, chunks), entities in zip(batch, tagged):
        store.write(article, sentences, chunks, vectors[i : i + len(chunks)], entities)
        i += len(chunks)
        if bar:
            bar.update(1)
    return len(texts)


def _tag(tagger: EntityTagger | None, per_article: list[list]) -> list:
    """Each article's entities (one list per article), or None per article without a tagger."""
    if tagger is None:
        return [None] * len(per_article)
    flat = tagger.tag([s for sentences in per_article for s in sentences])
    out, i = [], 0
    for sentences in per_article:
        out.append([e for found in flat[i : i + len(sentences)] for e in found])
        i += len(sentences)
    return out


def _tag_untagged(store: Store, tagger: EntityTagger, progress: bool) -> None:
    """Tag articles indexed before entities were stored, keeping their vectors (no re-embedding)."""
    todo = store.untagged()
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="article", desc="tag entities", dynamic_ncols=True)
    lib = store.library()  # read once: tagging changes no sentence
    for i in range(0, len(todo), 64):
        part = todo[i : i + 64]
        # The stored sentence offsets, not a fresh split: entities must line up with what is indexed.
        store.set_entities(part, _tag(tagger, [lib.sentences[a] for a in part]))
        if bar:
            bar.update(len(part))
    if bar:
        bar.close()
