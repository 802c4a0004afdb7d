"""Read a question and a sentence together: does the sentence answer the question?

The embedding model compares a question and a sentence each on its own, so it finds the story
but often not the sentence that answers (the right article comes first 91-98% of the time, the
exact sentence 58-66%). The reader is a cross-encoder: it sees both texts at once. It is
all-MiniLM-L6-v2 (the packaged model) fine-tuned on the 1,477 questions of
``eval/questions/bbc-train.jsonl`` by ``eval/train_reader.py``, exported to ONNX with int8
weights, and shipped in ``rag/models/reader/`` (23 MB), so nothing is downloaded.

The retriever's second stage asks it about its best few candidates (``Config.reader_candidates``),
unless the best leads clearly (``Config.reader_skip_margin``), and adds ``Config.reader_weight``
times its score; see eval/README.md for what that buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.embedding import onnx_feed, onnx_session

MAX_TOKENS = 96  # question + title + sentence; what the reader was trained with


class Reader(Protocol):
    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """How likely each passage answers ``question``, each in 0..1."""
        ...


def shipped_reader_path() -> Path:
    """The folder of the reader model that comes with Newsdesk."""
    return Path(__file__).resolve().parent / "models" / "reader"


def passage(title: str, sentence: str) -> str:
    """What the reader reads for a sentence: the sentence headed by its article's title.

    Sentences often say "the firm" where the question names it; the title names it.

    >>> passage("Amazon shuts Shanghai AI lab", "The lab opened in 2018.")
    'Amazon shuts Shanghai AI lab. The lab opened in 2018.'
    """
    return sentence if not title or sentence.startswith(title) else f"{title}. {sentence}"


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

    def _load(self) -> None:
        from tokenizers import Tokenizer

        model = self.folder / "model-int8.onnx"
        if not model.is_file():
            raise FileNotFoundError(f"no reader model at {model}; set reader=False (NEWSDESK_READER=0) to run without it")
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS, strategy="only_second")  # keep the question whole
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
