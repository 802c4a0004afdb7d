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
            if not line.group().strip():
                continue
            cursor = line.start()
            for piece in self._segment(line.group()):
                piece = piece.strip()
                if not piece:
                    continue
                # pysbd with clean=False returns the text unchanged, so each piece is found
                # at or after the cursor; searching (not counting) keeps offsets exact.
                start = text.find(piece, cursor, line.end())
                if start < 0:  # never seen; keep the rest of the line as one sentence rather than lose it
                    rest = text[cursor:line.end()].strip()
                    if rest:
                        start = text.find(rest, cursor)
                        out.append(Sentence(article.id, len(out), start, start + len(rest), rest))
                    break
                end = start + len(piece)
                out.append(Sentence(article.id, len(out), start, end, piece))
                cursor = end
        return out
