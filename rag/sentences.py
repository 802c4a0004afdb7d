"""Split an article into sentences that keep their character offsets.

pysbd (rule-based, "Golden Rules" tested) does the segmentation, so "Dr.", "U.S.", "Jan. 5",
decimals and quoted speech do not end sentences. We only map its output back onto the
article text, so ``article.text[s.start:s.end] == s.text`` holds by construction.
"""

from __future__ import annotations

import re

import pysbd

from rag.types import Article, Sentence

_LINE = re.compile(r"[^\n]+")
# pysbd slows down quadratically on long paragraphs (a 100 KB line took 8 s, 500 KB 282 s), and
# JSONL exports often hold a whole article on one line: long lines are segmented a block at a
# time, each block ending with its last, possibly cut, sentence handed on to the next block.
BLOCK_CHARS = 5000


class SentenceSplitter:
    """Split text into sentences with offsets; the pysbd segmenter is built on first use.

    >>> [s.text for s in SentenceSplitter().split(Article(id="a", text="Dr. No met U.S. staff. It rained."))]
    ['Dr. No met U.S. staff.', 'It rained.']
    """

    def __init__(self) -> None:
        self._segmenter: pysbd.Segmenter | None = None

    def _segment(self, paragraph: str) -> list[str]:
        if self._segmenter is None:
            self._segmenter = pysbd.Segmenter(language="en", clean=False)
        return self._segmenter.segment(paragraph)

    def split(self, article: Article) -> list[Sentence]:
        """Sentences of ``article`` in order; line breaks always end a sentence (headlines, paragraphs)."""
        text = article.text
        out: list[Sentence] = []
        for line in _LINE.finditer(text):
            for start, end in self._spans(text, line.start(), line.end()):
                out.append(Sentence(article.id, len(out), start, end, text[start:end]))
        return out

    def _spans(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """(start, end) of each sentence in ``text[start:end]`` (one line)."""
        spans: list[tuple[int, int]] = []
        cursor = start
        while cursor < end:
            stop = min(end, cursor + BLOCK_CHARS)
            found = self._find(text, cursor, stop, self._segment(text[cursor:stop]))
            if stop < end and len(found) > 1:
                spans += found[:-1]  # the last sentence may be cut by the block edge: redo it
                cursor = found[-1][0]
            else:
                spans += found
                cursor = stop
        return spans

    @staticmethod
    def _find(text: str, cursor: int, stop: int, pieces: list[str]) -> list[tuple[int, int]]:
        """Offsets of ``pieces`` in ``text[cursor:stop]``.

        pysbd with clean=False returns the text unchanged, so each piece is found at or after
        the cursor; searching (not counting) keeps offsets exact.
        """
        spans = []
        for piece in pieces:
            piece = piece.strip()
            if not piece:
                continue
            start = text.find(piece, cursor, stop)
            if start < 0:  # never seen; keep the rest as one sentence rather than lose it
                rest = text[cursor:stop].strip()
                if rest:
                    start = text.find(rest, cursor, stop)
                    spans.append((start, start + len(rest)))
                break
            spans.append((start, start + len(piece)))
            cursor = start + len(piece)
        return spans
