"""Group whole sentences into the units that are embedded and stored.

Three granularities (``Config.granularity``), compared on the development set in eval/README.md:
``sentence`` embeds each sentence alone; ``window`` embeds each sentence with ``window``
neighbours on each side, standing for its centre sentence; ``chunk`` embeds runs of
``chunk_sentences`` sentences.

With ``Config.embed_title`` each chunk is embedded headed by its article's title ("Gold falls
on IMF sale concerns. The IMF has 3,217 tonnes of gold."): a sentence alone often says "the
fund" or "he" where the question names the story (measured in eval/README.md).
"""

from __future__ import annotations

from rag.config import Config
from rag.types import Article, Chunk, Sentence, content_hash


def headed(title: str, text: str) -> str:
    """``text`` headed by its article's title, as it is embedded with ``Config.embed_title``.

    >>> headed("Gold falls on IMF sale concerns", "The IMF has 3,217 tonnes of gold.")
    'Gold falls on IMF sale concerns. The IMF has 3,217 tonnes of gold.'
    """
    return f"{title}. {text}" if title and text != title else text


def chunk(article: Article, sentences: list[Sentence], config: Config) -> list[Chunk]:
    """Chunks of ``article`` made of whole sentences, each recording which sentences it holds."""
    if config.granularity == "sentence":
        groups = [(i, [i]) for i in range(len(sentences))]
    elif config.granularity == "window":
        w = config.window
        groups = [
            (i, list(range(max(0, i - w), min(len(sentences), i + w + 1)))) for i in range(len(sentences))
        ]
    elif config.granularity == "chunk":
        n = config.chunk_sentences
        groups = [(i, list(range(i, min(len(sentences), i + n)))) for i in range(0, len(sentences), n)]
    else:
        raise ValueError(f"unknown granularity {config.granularity!r}: use sentence, window or chunk")

    chunks = []
    for anchor, idx in groups:
        start, end = sentences[idx[0]].start, sentences[idx[-1]].end
        text = article.text[start:end]
        embed_text = headed(article.title, text) if config.embed_title else text
        chunks.append(
            Chunk(
                id=content_hash(article.id, str(anchor), embed_text),
                article_id=article.id,
                sentence_indices=tuple(idx),
                anchor=anchor,
                start=start,
                end=end,
                text=text,
                embed_text=embed_text,
            )
        )
    return chunks
