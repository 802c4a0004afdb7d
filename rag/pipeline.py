"""Build the whole engine from a ``Config`` and answer through it: ``ask()``, ``retrieve()``, ``ingest()``.

>>> desk = Newsdesk(Config(corpus=Path("corpus")))   # cheap: nothing loads until first use
>>> desk.ingest().added                              # doctest: +SKIP
2
>>> desk.ask("Why did Amazon close its Shanghai lab?").citations[0].sentence  # doctest: +SKIP
'A WeChat post by Wang Minjie, ...'
"""

from __future__ import annotations

import numbers
import os
import re
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from rag.answer import ABSTAIN_TEXT, Draft, ExtractiveAnswerer, holds_answer
from rag.config import Config
from rag.conversation import standalone
from rag.corpus import UnreadableFile, parse, read_bytes, upload_name
from rag.embedding import Embedder, SentenceTransformerEmbedder
from rag.entities import EntityTagger
from rag.ingest import IngestReport, ingest
from rag.reader import OnnxReader, Reader
from rag.retrieval import HybridRetriever
from rag.store import Store
from rag.types import Answer, AnswerSentence, Article, Citation, Filters, Hit, Sentence
from rag.verify import Verifier


class BadQuestion(ValueError):
    """The question cannot be asked as given (empty, too long, bad filters or history); the message says why."""


# Control characters and bidirectional overrides: invisible, and an override reverses how the rest of
# the question is displayed (e.g. in "understood as: ..."), so they become spaces.
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FILTER_LISTS = ("sources", "source", "article_ids", "article_id")


class Newsdesk:
    """The engine. Pass an ``embedder`` or ``reader`` (e.g. fakes in tests) or let it load the shipped models."""

    def __init__(self, config: Config, embedder: Embedder | None = None, answerer=None, today=None,
                 reader: Reader | None = None) -> None:
        self.config = config
        self.embedder = embedder or SentenceTransformerEmbedder(config.model_path, config.backend, config.batch_size)
        self.tagger = EntityTagger(config.ner_model) if config.tags_entities else None
        self.store = Store(config)
        if reader is None and config.reader and config.rerank:
            reader = OnnxReader(config.reader_model)
        self.retriever = HybridRetriever(self.store, self.embedder, config, today=today, reader=reader)
        self.answerer = answerer or make_answerer(config)
        # The quoted (extractive) answer: the answer without an LLM, the engine's abstention rule
        # with one, and what is shown when the model's answer is not backed.
        self.quoter = self.answerer if isinstance(self.answerer, ExtractiveAnswerer) else ExtractiveAnswerer(config)
        self.verifier = Verifier(self.embedder)

    # --- indexing ------------------------------------------------------------------------

    def ingest(self, progress: bool = False) -> IngestReport:
        """Bring the index in line with ``config.corpus`` (files over ``config.max_file_bytes`` are refused unread)."""
        return ingest(self.config, self.store, self.embedder, progress=progress, tagger=self.tagger)

    def add_files(self, paths: list[Path]) -> tuple[IngestReport, list[dict]]:
        """Save readable article files into the corpus folder and ingest; bad files change nothing.

        Only the last part of a name is kept (``../../etc/passwd.txt`` is saved as ``passwd.txt``
        in the corpus folder), the type is checked by extension and by content (binary is refused),
        and a file over ``config.max_file_bytes`` is refused by its size before it is read.
        Returns the ingest report and one ``{"path", "reason"}`` per rejected file.
        """
        rejected, accepted = [], []
        for p in map(Path, paths):
            try:
                name = upload_name(p.name)
                data = read_bytes(p, self.config.max_file_bytes)
                parse(data, name)
            except UnreadableFile as e:
                rejected.append({"path": p.name, "reason": str(e)})
                continue
            accepted.append((p, name, data))
        saved = 0
        for p, name, data in accepted:
            try:
                save_into(Path(self.config.corpus), name, data)
                saved += 1
            except OSError as e:
                rejected.append({"path": p.name, "reason": f"cannot save into the corpus folder: {e.strerror}"})
        report = self.ingest() if saved else IngestReport()
        return report, rejected

    # --- asking --------------------------------------------------------------------------

    def check_question(self, question) -> str:
        """``question`` as it is searched (control characters removed, spaces collapsed), or ``BadQuestion``."""
        if question is None or isinstance(question, str) and not question.strip():
            raise BadQuestion("Please type a question: it is empty.")
        if not isinstance(question, str):
            raise BadQuestion(f"The question must be text, not {type(question).__name__}.")
        if len(question) > self.config.max_question_chars:
            raise BadQuestion(
                f"The question is {len(question):,} characters long; the limit is {self.config.max_question_chars:,}. "
                "Please ask something shorter."
            )
        question = " ".join(_INVISIBLE.sub(" ", question).split())
        if not question:
            raise BadQuestion("Please type a question: it is empty.")
        if not re.search(r"\w", question):
            raise BadQuestion("Please type a question in words: this one has no letters or digits.")
        return question

    def warm(self) -> None:
        """Load what the first question would wait for: the model, the lexical index, the retriever's caches.

        On the BBC index (41,369 sentences) that is about 3 s, once per change of the index.
        """
        self.retriever.retrieve("warm up", k=1)
        if self.retriever.reader is not None:
            # The retriever skips the reader when its best sentence leads clearly, so the
            # question above may not have loaded it.
            self.retriever.reader.score("warm up", ["warm up"])

    def retrieve(self, question: str, k: int = 10, filters: Filters | dict | None = None, for_answer: bool = False) -> list[Hit]:
        """The ``k`` best sentences; ``for_answer`` ranks as ``ask`` does, reading more (slower)."""
        question = self.check_question(question)
        return self.retriever.retrieve(question, k=check_k(k), filters=check_filters(filters), for_answer=for_answer)

    def ask(self, question: str, history: list | None = None, filters: Filters | dict | None = None, k: int = 10) -> Answer:
        """Answer ``question`` (with earlier ``(question, answer)`` turns) citing exact sentences."""
        *_, answer = self.ask_stream(question, history, filters, k)  # the streamed text is not needed here
        return answer

    def skips_llm(self, quoted: Draft) -> bool:
        """Is the quoted answer final: no LLM is configured, or the engine abstains and ``config.gate_llm``?"""
        return self.answerer is self.quoter or (quoted.abstained and self.config.gate_llm)

    def rewrite(self, question: str, history: list) -> str:
        rewriter = getattr(self.answerer, "rewrite", None)
        return rewriter(question, history) if rewriter and history else standalone(question, history, self.names)

    def names(self, text: str) -> list[tuple[str, str]]:
        """The named entities of ``text`` as ``(text, label)``, by the ingest's tagger; none when tagging is off."""
        if self.tagger is None or not text.strip():
            return []
        found = self.tagger.tag([Sentence("text", 0, 0, len(text), text)])[0]
        return [(text[e.start:e.end], e.label) for e in found]

    def ask_stream(self, question: str, history: list | None = None, filters=None, k: int = 10) -> Iterator[str | Answer]:
        """Like ``ask`` but yields answer text as it is produced (LLM answerers), then the ``Answer``."""
        t0 = time.perf_counter()
        question = self.check_question(question)
        history = check_history(history)
        query = self.rewrite(question, history)
        hits = self.retrieve(query, k=k, filters=filters, for_answer=True)
        quoted = self.quoter.answer(query, hits)
        stream = getattr(self.answerer, "stream", None)
        if self.skips_llm(quoted):
            draft = quoted
        elif stream is None:
            draft = self.answerer.answer(query, hits)
        else:
            draft = None
            for piece in stream(query, hits):
                if isinstance(piece, Draft):
                    draft = piece
                else:
                    yield piece
        yield self.finish(question, query, hits, draft, time.perf_counter() - t0, quoted=quoted)

    def finish(self, question: str, query: str, hits: list[Hit], draft: Draft, seconds: float, note: str = "",
               quoted: Draft | None = None) -> Answer:
        """Number the citations of a draft, verify each answer sentence, and build the ``Answer``.

        When an LLM wrote the draft and none of its sentences is backed by what it cites (or it
        wrote nothing usable), or what it backs gives no answer of the asked kind (no person for
        a who-question), the quoted answer (``quoted``, the extractive one) is given instead, with
        a note saying so: a model that failed to answer is no evidence that the articles are
        silent, so it must not make the engine say they are. Only the model's own "The articles
        don't say." abstains.
        """
        by = "extractive" if note or draft is quoted or isinstance(self.answerer, ExtractiveAnswerer) else "llm"
        abstain = Answer(question, query, (AnswerSentence(ABSTAIN_TEXT, supported=False),), (), True,
                         related=self.related(hits, ()), seconds=seconds, hits=tuple(hits), answered_by=by, note=note)
        if draft.abstained:
            return abstain
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
        backed = [s.text for s in sentences if s.supported]
        failed = ""
        if by == "llm" and not backed:
            failed = "The language model gave no answer backed by the sentences it cited, so none is shown from it."
        elif by == "llm" and self.answers_nothing_asked(query, backed):
            failed = ("The language model's answer does not give what the question asks for (a name, figure or "
                      "date it does not already hold), so it is not shown.")
        if failed:
            fallback = quoted if quoted is not None else self.quoter.answer(query, hits)
            return self.finish(question, query, hits, fallback, seconds, quoted=fallback,
                               note=failed + ("" if fallback.abstained else " This answer quotes the articles instead."))
        if not backed:
            # Nothing the answerer said is backed by the articles: say so rather than show it as fact.
            return abstain
        return Answer(question, query, tuple(sentences), tuple(citations), False,
                      related=self.related(hits, citations), short_answer=draft.short_answer, seconds=seconds,
                      hits=tuple(hits), answered_by=by, note=note)

    def answers_nothing_asked(self, question: str, claims: list[str]) -> bool:
        """True when the question asks for a kind of answer (who, how many, when...) and ``claims`` give none.

        "Who was appointed?" answered "A commissioner has been appointed." is backed by its
        citation and answers nothing. Claims are tagged for names as sentences are at ingest.
        """
        text = " ".join(claims)
        return holds_answer(question, text, self.names(text), self.tagger is not None) is False

    def related(self, hits: list[Hit], citations: Sequence[Citation]) -> tuple[Hit, ...]:
        """The best ``config.related_hits`` sentences that are not cited: shown apart, never as support.

        The cited sentence is the exact one about two times in three (eval/README.md); the right
        one is usually among the next few, so a reader sees them without asking again.
        """
        cited = {(c.article_id, c.start) for c in citations}
        return tuple(h for h in hits if (h.article_id, h.start) not in cited)[: self.config.related_hits]

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


def check_k(k) -> int:
    """``k`` (how many hits to return) if it is a whole number of at least 1, else ``BadQuestion``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise BadQuestion(f"k must be a whole number of at least 1, not {k!r}.")
    return int(k)


def check_history(history) -> list[tuple[str, str]]:
    """Earlier turns as ``(question, answer)`` pairs of text (a missing answer is ""), else ``BadQuestion``."""
    turns = []
    for turn in history or []:
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and isinstance(turn[0], str)
                and isinstance(turn[1], (str, type(None)))):
            raise BadQuestion(f"history must be a list of [question, answer] pairs of text; got {str(turn)[:60]!r}.")
        turns.append((turn[0], turn[1] or ""))
    return turns


def check_filters(filters) -> Filters | None:
    """``filters`` (a ``Filters``, or a dict as the API and CLI give them) checked, else ``BadQuestion`` saying why.

    >>> check_filters({"sources": "Reuters", "date_from": "2024-05-31"})
    Filters(sources=('Reuters',), date_from='2024-05-31', date_to=None, article_ids=(), undated=False)
    """
    if isinstance(filters, dict):
        for key in _FILTER_LISTS:
            v = filters.get(key)
            if v is not None and not isinstance(v, str) and not (
                    isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)):
                raise BadQuestion(f"filter {key} must be a list of names (text), not {type(v).__name__}: {str(v)[:60]}")
        try:
            filters = Filters.from_dict(filters)
        except ValueError as e:
            raise BadQuestion(f"{e}; the filters are sources, date_from, date_to and article_ids.") from None
    elif filters is not None and not isinstance(filters, Filters):
        raise BadQuestion('filters must be an object like {"sources": ["Reuters"], "date_from": "2024-01-31"}, '
                          f"not {type(filters).__name__}.")
    if not filters:
        return None
    for key in ("date_from", "date_to"):
        value = getattr(filters, key)
        if value is not None and not _is_date(value):
            raise BadQuestion(f"{key} “{value}” is not a date: write it as YYYY-MM-DD, e.g. 2024-05-31.")
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise BadQuestion(f"date_from {filters.date_from} is after date_to {filters.date_to}: no article can match.")
    return filters


def _is_date(value) -> bool:
    try:
        return isinstance(value, str) and bool(_ISO_DATE.fullmatch(value)) and bool(date.fromisoformat(value))
    except ValueError:
        return False


def save_into(folder: Path, name: str, data: bytes) -> None:
    """Write ``data`` as ``folder/name`` in one step; whatever was at that name (even a link) is replaced, not followed.

    The bytes go to a hidden temporary file first (ingest ignores hidden files), then take the
    name by rename, so a concurrent ingest never reads half a file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes it private; corpus files are ordinary files
            f.write(data)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_answerer(config: Config):
    """The answerer ``config.llm`` names: extractive (no LLM) by default."""
    if config.llm in ("none", "", None):
        return ExtractiveAnswerer(config)
    from rag.llm import LLMAnswerer

    return LLMAnswerer(config)
