"""The shipped embedder: which model embeds by default, and that an index never mixes two models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import headed
from rag.config import Config
from rag.corpus import load_folder
from rag.embedding import SentenceTransformerEmbedder, model_tag, packaged_model_path, shipped_model_path
from rag.evaluation import load_questions
from rag.sentences import SentenceSplitter
from rag.store import Store
from rag.types import Article
from tests.conftest import eval_script

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_embedder_is_the_default_and_records_how_it_was_made():
    folder = Path(shipped_model_path())
    record = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    assert record["questions"] == ["eval/questions/bbc-train.jsonl"]
    assert SentenceTransformerEmbedder().dim == 384
    assert model_tag(None) == model_tag(str(folder)) != ""


def test_each_model_gets_collections_of_its_own(tmp_path):
    """Vectors of two models do not compare: switching model must not search the old vectors."""
    packaged = Store(Config(index=tmp_path, model_path=packaged_model_path()))
    shipped = Store(Config(index=tmp_path))
    assert packaged.name == "newsdesk-st"  # indexes made before the shipped embedder still open
    assert shipped.name.startswith("newsdesk-st-m") and shipped.name != packaged.name

    # a retrained model differs in its recorded weights hash, even at the same file sizes
    copy = tmp_path / "retrained"
    shutil.copytree(shipped_model_path(), copy)
    record = json.loads((copy / "training.json").read_text(encoding="utf-8"))
    (copy / "training.json").write_text(json.dumps({**record, "weights_sha256": "0" * 64}), encoding="utf-8")
    assert Store(Config(index=tmp_path, model_path=str(copy))).name not in (shipped.name, packaged.name)


def _gold_ranks(embedder, units, questions) -> list[int]:
    vectors = embedder.embed([text for _, _, text in units])
    ranks = []
    for q, v in zip(questions, embedder.embed([q["question"] for q in questions])):
        order = np.argsort(-(vectors @ v))
        gold = [any(e["doc"] == units[u][0] and (e["sentence"] in units[u][1] or units[u][1] in e["sentence"])
                    for e in q["evidence"]) for u in order]
        ranks.append(gold.index(True) + 1)
    return ranks


def test_the_shipped_embedder_finds_answering_sentences_better_than_the_packaged_model():
    """On the shipped corpus's questions (never trained on): the answering sentence ranks higher."""
    articles, _, _ = load_folder(ROOT / "corpus")
    splitter = SentenceSplitter()
    units = [(a.id, s.text, headed(a.title, s.text)) for a in articles for s in splitter.split(a)]
    questions = [q for q in load_questions(ROOT / "eval" / "questions" / "seeds.jsonl") if q["type"] == "single"]
    shipped = _gold_ranks(SentenceTransformerEmbedder(), units, questions)
    packaged = _gold_ranks(SentenceTransformerEmbedder(packaged_model_path()), units, questions)
    mrr = lambda ranks: float(np.mean([1 / r for r in ranks]))  # noqa: E731
    assert mrr(shipped) > mrr(packaged)  # measured 2026-11-28: 0.73 against 0.66
    assert sum(r <= 3 for r in shipped) > sum(r <= 3 for r in packaged)  # 13 of 14 against 11


def test_training_pairs_each_question_with_its_answer_and_a_sentence_of_the_same_story():
    """What eval/train_embedder.py trains on: the gold sentence, title-headed as the index embeds it,
    against another sentence of the same article (the lead, here, the usual wrong answer)."""
    train_embedder = eval_script("train_embedder")
    article = Article(id="business/001.txt", title="Lab shuts",
                      text="Lab shuts\n\nAmazon closed its Shanghai lab. It had 40 staff when it shut.")
    sentences = SentenceSplitter().split(article)
    question = {"question": "How many people worked at the Shanghai lab?", "type": "single",
                "evidence": [{"doc": "business/001.txt", "sentence": "It had 40 staff when it shut."}]}
    missing = {**question, "evidence": [{"doc": "business/002.txt", "sentence": "Not indexed."}]}
    examples = train_embedder.triplets({article.id: article}, {article.id: sentences}, [question, missing])
    assert len(examples) == 1  # a question whose evidence is not found gives no example
    q, positive, negative = examples[0]
    assert q == question["question"]
    assert positive == "Lab shuts. It had 40 staff when it shut."
    assert negative in ("Lab shuts", "Lab shuts. Amazon closed its Shanghai lab.")
