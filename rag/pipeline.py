"""Build the whole engine from a ``Config`` and answer through it: ``ask()``, ``retrieve()``, ``ingest()``.

>>> desk = Newsdesk(Config(corpus=Path("corpus")))   # cheap: nothing loads until first use
>>> desk.ingest().added                              # doctest: +SKIP
2
>>> desk.ask("Why did Amazon close its Shanghai lab?").citations[0].sentence  # doctest: +SKIP
'A WeChat post by Wang Minjie, ...'
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from rag.answer import ABSTAIN_TEXT, Draft, ExtractiveAnswerer
from rag.config import Config
from rag.conversation import standalone
from rag.corpus import SUFFIXES, UnreadableFile, read_file
from rag.embedding import Embedder, SentenceTransformerEmbedder
from rag.ingest import IngestReport, ingest
from rag.retrieval import HybridRetriever
from rag.store import Store
from rag.types import Answer, AnswerSentence, Article, Citation, Filters, Hit
from rag.verify import Verifier


class BadQuestion(ValueError):
    """The question cannot be asked as given (empty, too long); the message says why."""


class Newsdesk:
    """The engine. Pass an ``embedder`` (e.g. a fake in tests) or let it load the packaged model."""

    def __init__(self, config: Config, embedder: Embedder | None = None, answerer=None, today=None) -> None:
        self.config = config
        self.embedder = embedder or SentenceTransformerEmbedder(config.model_path, config.backend, config.batch_size)
        self.store = Store(config)
        self.retriever = HybridRetriever(self.store, self.embedder, config, today=today)
        self.answerer = answerer or make_answerer(config)
        self.verifier = Verifier(self.embedder)

    # --- indexing ------------------------------------------------------------------------

    def ingest(self, progress: bool = False) -> IngestReport:
        """Bring the index in line with ``config.corpus``."""
        return ingest(self.config, self.store, self.embedder, progress=progress)

    def add_files(self, paths: list[Path]) -> tuple[IngestReport, list[dict]]:
        """Copy readable article files into the corpus folder and ingest; bad files change nothing.

        Returns the ingest report and one ``{"path", "reason"}`` per rejected file.
        """
        rejected, accepted = [], []
        corpus = Path(self.config.corpus)
        for p in map(Path, paths):
            if p.suffix.lower() not in SUFFIXES and p.suffix.lower() != ".jsonl":
                rejected.append({"path": p.name, "reason": f"unsupported file type {p.suffix or '(none)'}"})
                continue
            try:
                read_file(p, p.name)
            except UnreadableFile as e:
                rejected.append({"path": p.name, "reason": str(e)})
                continue
            accepted.append(p)
        for p in accepted:
            corpus.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, corpus / p.name)
        report = self.ingest() if accepted else IngestReport()
        return report, rejected

    # --- asking --------------------------------------------------------------------------

    def check_question(self, question) -> str:
        if not isinstance(question, str) or not question.strip():
            raise BadQuestion("Please type a question: it is empty.")
        if len(question) > self.config.max_question_chars:
            raise BadQuestion(
                f"The question is {len(question):,} characters long; the limit is {self.config.max_question_chars:,}. "
                "Please ask something shorter."
            )
        return question.strip()

    def retrieve(self, question: str, k: int = 10, filters: Filters | dict | None = None) -> list[Hit]:
        question = self.check_question(question)
        return self.retriever.retrieve(question, k=k, filters=Filters.from_dict(filters) if isinstance(filters, dict) else filters)

    def ask(self, question: str, history: list | None = None, filters: Filters | dict | None = None, k: int = 10) -> Answer:
        """Answer ``question`` (with earlier ``(question, answer)`` turns) citing exact sentences."""
        t0 = time.perf_counter()
        question = self.check_question(question)
        history = [tuple(turn) for turn in (history or [])]
        query = self.rewrite(question, history)
        hits = self.retrieve(query, k=k, filters=filters)
        draft = self.answerer.answer(query, hits)
        return self.finish(question, query, hits, draft, time.perf_counter() - t0)

    def rewrite(self, question: str, history: list) -> str:
        rewriter = getattr(self.answerer, "rewrite", None)
        return rewriter(question, history) if rewriter and history else standalone(question, history)

    def ask_stream(self, question: str, history: list | None = None, filters=None, k: int = 10) -> Iterator[str | Answer]:
        """Like ``ask`` but yields answer text as it is produced (LLM answerers), then the ``Answer``."""
        t0 = time.perf_counter()
        question = self.check_question(question)
        history = [tuple(turn) for turn in (history or [])]
        query = self.rewrite(question, history)
        hits = self.retrieve(query, k=k, filters=filters)
        stream = getattr(self.answerer, "stream", None)
        if stream is None:
            draft = self.answerer.answer(query, hits)
        else:
            draft = None
            for piece in stream(query, hits):
                if isinstance(piece, Draft):
                    draft = piece
                else:
                    yield piece
        yield self.finish(question, query, hits, draft, time.perf_counter() - t0)

    def finish(self, question: str, query: str, hits: list[Hit], draft: Draft, seconds: float) -> Answer:
        """Number the citations of a draft, verify each answer sentence, and build the ``Answer``."""
        if draft.abstained or not draft.sentences:
            return Answer(question, query, (AnswerSentence(ABSTAIN_TEXT, supported=False),), (), True,
                          related=tuple(hits[:3]), seconds=seconds, hits=tuple(hits))
        numbers: dict[int, int] = {}
        citations: list[Citation] = []
        sentences: list[AnswerSentence] = []
        for j, (text, cited) in enumerate(draft.sentences):
            cited = [i for i in cited if 0 <= i < len(hits)]
            support = self.verifier.check(text, [hits[i].text for i in cited])
            marks = []
            for i in cited:
                one = self.verifier.check(text, [hits[i].text])
                if not one.supported and len(cited) > 1:
                    continue  # a citation that does not back this sentence is dropped, not shown
                if i not in numbers:
                    numbers[i] = len(numbers) + 1
                    h = hits[i]
                    citations.append(Citation(numbers[i], h.article_id, h.title, h.source, h.published,
                                              h.text, h.start, h.end, j, one.score))
                marks.append(numbers[i])
            span = draft.span if j == 0 else None
            sentences.append(AnswerSentence(text, tuple(marks), support.supported and bool(marks), support.score, span))
        supported = [s for s in sentences if s.supported]
        if not supported:
            # Nothing the answerer said is backed by the articles: say so rather than show it as fact.
            return Answer(question, query, (AnswerSentence(ABSTAIN_TEXT, supported=False),), (), True,
                          related=tuple(hits[:3]), seconds=seconds, hits=tuple(hits))
        return Answer(question, query, tuple(sentences), tuple(citations), False,
                      short_answer=draft.short_answer, seconds=seconds, hits=tuple(hits))

    # --- looking things up ---------------------------------------------------------------

    def article(self, article_id: str) -> dict:
        """An indexed article: text, metadata and sentence offsets."""
        lib = self.store.library()
        if article_id not in lib.articles:
            raise KeyError(f"no article with id {article_id!r}")
        a: Article = lib.articles[article_id]
        return {
            "id": a.id, "title": a.title, "source": a.source, "published": a.published, "url": a.url, "text": a.text,
            "sentences": [{"index": s.index, "start": s.start, "end": s.end} for s in lib.sentences[article_id]],
        }

    def stats(self) -> dict:
        return self.store.stats()

    def articles(self) -> list[Article]:
        """Every indexed article (text and metadata), newest first where dates are known."""
        return sorted(self.store.library().articles.values(), key=lambda a: (a.published or "", a.id), reverse=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors in the index's embedding space (unit length, 384-d)."""
        return self.embedder.embed(texts)


def make_answerer(config: Config):
    """The answerer ``config.llm`` names: extractive (no LLM) by default."""
    if config.llm in ("none", "", None):
        return ExtractiveAnswerer(config)
    from rag.llm import LLMAnswerer

    return LLMAnswerer(config)
