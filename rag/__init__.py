"""Newsdesk: question answering over a news corpus, citing exact source sentences."""

from rag.config import Config
from rag.types import Answer, AnswerSentence, Article, Chunk, Citation, Filters, Hit, Sentence

__all__ = ["Config", "Answer", "AnswerSentence", "Article", "Chunk", "Citation", "Filters", "Hit", "Sentence"]
