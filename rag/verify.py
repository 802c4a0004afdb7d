"""Check each answer sentence against the sentences it cites: lexical and embedding support."""

from __future__ import annotations

from dataclasses import dataclass

import re

import numpy as np

from rag.embedding import Embedder
from rag.questions import terms

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

SUPPORTED = 0.55  # support at or above this counts as supported (set on bbc-dev, see eval/README.md)


@dataclass(frozen=True)
class Support:
    """How well a set of cited sentences supports one answer sentence."""

    lexical: float  # share of the answer sentence's content words found in the cited sentences
    semantic: float  # best cosine similarity between the answer sentence and a cited sentence
    score: float  # the mean of the two, 0..1
    supported: bool


class Verifier:
    """``check(claim, cited)`` -> ``Support``; an uncited claim is never supported."""

    def __init__(self, embedder: Embedder, threshold: float = SUPPORTED) -> None:
        self.embedder = embedder
        self.threshold = threshold

    def check(self, claim: str, cited: list[str]) -> Support:
        if not cited:
            return Support(0.0, 0.0, 0.0, False)
        if any(claim.strip() == c.strip() for c in cited):
            return Support(1.0, 1.0, 1.0, True)  # quoted verbatim: supported by construction
        claim_terms = terms(claim)
        cited_terms = set().union(*(terms(c) for c in cited))
        lexical = len(claim_terms & cited_terms) / len(claim_terms) if claim_terms else 0.0
        vectors = self.embedder.embed([claim, *cited])
        semantic = float(np.max(vectors[1:] @ vectors[0]))
        score = (lexical + max(semantic, 0.0)) / 2
        # A figure the sources do not contain is the commonest way a fluent answer goes wrong;
        # similarity scores barely notice "7%" against "5%", so any such figure fails the claim.
        cited_numbers = set(_NUMBER.findall(" ".join(cited)))
        invented = any(n not in cited_numbers for n in _NUMBER.findall(claim))
        return Support(lexical, semantic, score, score >= self.threshold and not invented)
