"""Read a question and a sentence together: does the sentence answer the question?

The embedding model compares a question and a sentence each on its own, so it finds the story
but often not the sentence that answers (the right article comes first 91-98% of the time, the
exact sentence 58-66%). The reader is a cross-encoder: it sees both texts at once. It is
all-MiniLM-L6-v2 (the packaged model) fine-tuned on the 1,477 questions of
``eval/questions/bbc-train.jsonl`` by ``eval/train_reader.py``, exported to ONNX with int8
weights, and shipped in ``rag/models/reader/`` (23 MB), so nothing is downloaded.

The retriever's second stage asks it about its best few candidates (``Config.reader_candidates``),
unless the best leads clearly (``Config.reader_skip_margin``; ``answer_reader_skip_margin`` when
ranking for an answer), and adds ``Config.reader_weight`` times its score; see eval/README.md
for what that buys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.embedding import onnx_feed, onnx_session

MAX_TOKENS = 96  # question + title + sentence; what the reader was trained with
CONTEXT_MAX_TOKENS = 160  # question + sentence + title + the sentence before it


class Reader(Protocol):
    """Scores passages for a question. A reader with ``context = True`` is given each sentence
    with the one before it (``passage_in``); without the attribute, title and sentence only."""

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """How likely each passage answers ``question``, each in 0..1."""
        ...


def reader_settings(folder: Path) -> dict:
    """How the model in ``folder`` reads: ``{"context": bool, "max_tokens": int}``.

    A model trained with the sentence before each sentence says so in its ``reader.json``; a
    folder without one holds a model that reads title and sentence only.
    """
    settings = {"context": False, "max_tokens": MAX_TOKENS}
    path = Path(folder) / "reader.json"
    if path.is_file():
        settings.update(json.loads(path.read_text(encoding="utf-8")))
    return settings


def shipped_reader_path() -> Path:
    """The folder of the reader model that comes with Newsdesk."""
    return Path(__file__).resolve().parent / "models" / "reader"


def passage(title: str, sentence: str, before: str | None = None) -> str:
    """What the reader reads for a sentence: the sentence headed by its article's title.

    Sentences often say "the firm" where the question names it; the title names it. A reader
    trained with context (``before`` not None) also reads the sentence before, since "This was
    used by just 200 students" says what "this" is only there. The sentence comes first so
    that truncation cuts the context, never the sentence; ``[SEP]`` is the model's own separator.

    >>> passage("Amazon shuts Shanghai AI lab", "The lab opened in 2018.")
    'Amazon shuts Shanghai AI lab. The lab opened in 2018.'
    >>> passage("Amazon shuts Shanghai AI lab", "It opened in 2018.", "The lab had 40 staff.")
    'It opened in 2018. [SEP] Amazon shuts Shanghai AI lab. The lab had 40 staff.'
    """
    if before is not None:
        return f"{sentence} [SEP] {title}. {before}".rstrip()
    return sentence if not title or sentence.startswith(title) else f"{title}. {sentence}"


def passage_in(library, article_id: str, index: int, context: bool = False) -> str:
    """``passage`` for sentence ``index`` of an indexed article (``library``: ``rag.store.Library``)."""
    before = (library.sentence(article_id, index - 1).text if index > 0 else "") if context else None
    return passage(library.articles[article_id].title, library.sentence(article_id, index).text, before)


class OnnxReader:
    """The shipped cross-encoder, run by ONNX Runtime; the model is loaded on first use, once.

    >>> reader = OnnxReader()
    >>> p = reader.score("When did the lab open?", ["The lab opened in 2018.", "Shares fell 3%."])
    >>> bool(p[0] > p[1])
    True
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder else shipped_reader_path()
        self._session = None
        self._tokenizer = None

    @cached_property
    def settings(self) -> dict:
        """How this model reads (``reader_settings``), read once from its folder."""
        return reader_settings(self.folder)

    @property
    def context(self) -> bool:
        """Does this model read the sentence before each sentence (see ``passage``)?"""
        return bool(self.settings["context"])

    def _load(self) -> None:
        from tokenizers import Tokenizer

        model = self.folder / "model-int8.onnx"
        if not model.is_file():
            raise FileNotFoundError(f"no reader model at {model}; set reader=False (NEWSDESK_READER=0) to run without it")
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        # keep the question whole
        tokenizer.enable_truncation(max_length=int(self.settings["max_tokens"]), strategy="only_second")
        tokenizer.enable_padding()
        self._session = onnx_session(model)
        self._tokenizer = tokenizer

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        if self._session is None:
            self._load()
        feed = onnx_feed(self._tokenizer.encode_batch([(question, p) for p in passages]))
        logits = self._session.run(None, feed)[0][:, 0]
        return 1.0 / (1.0 + np.exp(-logits))
