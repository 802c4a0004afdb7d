"""The question sets in eval/questions/ are well formed and their evidence is real.

Every evidence sentence must occur verbatim in the article it names, as the article is read by
rag/corpus.py, and be one sentence as rag/sentences.py splits it; bbc-test and bbc-test2 must stay
held out (no article that bbc-dev uses, and bbc-test2 shares no article with bbc-test). bbc-dev2 is a
second dev set on articles 001-200 that no other dev set uses, so it measures the engine on fresh questions.
bbc-train (the questions the reader model is trained on and the second-stage weights fitted on)
uses articles no other set uses, none of them a copy of a held-out article. bbc-test3 and bbc-test4
use articles numbered above 200 that no other set uses, none a copy of another set's article.
"""

import re

import pytest

from rag.corpus import load_folder
from rag.evaluation import load_questions
from rag.metrics import locate
from rag.sentences import SentenceSplitter
from tests.conftest import BBC, ROOT, SHIPPED

QUESTIONS = ROOT / "eval" / "questions"
SETS = {
    "seeds.jsonl": SHIPPED,
    "bbc-dev.jsonl": BBC,
    "bbc-dev-multi2.jsonl": BBC,
    "bbc-dev-unans.jsonl": BBC,
    "bbc-dev-offtopic.jsonl": BBC,
    "bbc-dev2.jsonl": BBC,
    "bbc-dev-followup.jsonl": BBC,
    "bbc-test-followup.jsonl": BBC,
    "bbc-test-followup2.jsonl": BBC,
    "bbc-train.jsonl": BBC,
    "bbc-test.jsonl": BBC,
    "bbc-test2.jsonl": BBC,
    "bbc-test3.jsonl": BBC,
    "bbc-test4.jsonl": BBC,
}


@pytest.fixture(scope="module")
def corpora():
    return {folder: {a.id: a for a in load_folder(folder)[0]} for folder in {SHIPPED, BBC} if folder.is_dir()}


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_evidence_sentence_is_a_sentence_of_its_article(name, corpora):
    folder = SETS[name]
    if folder not in corpora:
        pytest.skip(f"corpus not found at {folder}")
    articles = corpora[folder]
    questions = load_questions(QUESTIONS / name)
    splitter = SentenceSplitter()
    for q in questions:
        assert q["type"] in ("single", "multi", "unanswerable"), q["id"]
        docs = [e["doc"] for e in q["evidence"]]
        if q["type"] == "unanswerable":
            assert not docs and not q["answer"], q["id"]
            continue
        assert q["answer"], q["id"]
        if q["type"] == "single":
            assert len(docs) == 1, q["id"]
            said = q["evidence"][0]["sentence"].lower()
            assert any(a.lower() in said for a in [q["answer"], *q["aliases"]]), f"{q['id']}: answer not in its evidence"
        else:
            assert len(set(docs)) >= 2, f"{q['id']}: a multi question needs two articles"
        for e in q["evidence"]:
            article = articles.get(e["doc"])
            assert article is not None, f"{q['id']}: no article {e['doc']}"
            assert e["sentence"] in article.text, f"{q['id']}: evidence not verbatim in {e['doc']}"
            start, end = locate(article.text, e["sentence"])
            split = [(s.start, s.end) for s in splitter.split(article)]
            overlaps = [min(end, b) - max(start, a) for a, b in split if min(end, b) > max(start, a)]
            assert max(overlaps, default=0) >= (end - start) / 2, f"{q['id']}: evidence is not one sentence of {e['doc']}"
        for _, said in q["history"]:  # a conversation's earlier answers quote the same article
            assert said in articles[docs[0]].text, f"{q['id']}: earlier answer not verbatim in {docs[0]}"


def test_ids_and_questions_are_unique_and_the_test_set_is_held_out():
    ids, asked, files = set(), set(), {}
    for name in SETS:
        for q in load_questions(QUESTIONS / name):
            said = (q["question"], tuple(q["history"]))  # a follow-up ("Who founded it?") is unique in its conversation
            assert q["id"] not in ids and said not in asked, q["id"]
            ids.add(q["id"])
            asked.add(said)
            files.setdefault(name, set()).update(e["doc"] for e in q["evidence"])
    number = lambda doc: int(re.search(r"(\d+)\.txt$", doc).group(1))  # noqa: E731
    assert all(number(d) <= 200 for d in files["bbc-dev.jsonl"] | files["bbc-dev-multi2.jsonl"])
    # The unanswerable dev questions cite no evidence, so the article each is about is what stays in dev.
    unanswerable = load_questions(QUESTIONS / "bbc-dev-unans.jsonl")
    assert all(q["type"] == "unanswerable" for q in unanswerable)
    assert all(number(q["about"]) <= 200 for q in unanswerable)
    # Off-topic dev questions (session 9) ask about events no article covers: no evidence, no article.
    assert all(q["type"] == "unanswerable" and q["kind"] == "off-topic" and "about" not in q
               for q in load_questions(QUESTIONS / "bbc-dev-offtopic.jsonl"))
    # bbc-dev2 stays in dev but on articles no other dev set has seen.
    assert all(number(d) <= 200 for d in files["bbc-dev2.jsonl"])
    seen = files["bbc-dev.jsonl"] | files["bbc-dev-multi2.jsonl"] | {q["about"] for q in unanswerable}
    assert not files["bbc-dev2.jsonl"] & seen
    # The follow-ups (session 13) continue conversations about bbc-dev and bbc-dev2 articles.
    assert files["bbc-dev-followup.jsonl"] <= files["bbc-dev.jsonl"] | files["bbc-dev2.jsonl"]
    assert all(q["history"] for q in load_questions(QUESTIONS / "bbc-dev-followup.jsonl"))
    # Their held-out counterpart continues conversations about bbc-test4 articles.
    assert files["bbc-test-followup.jsonl"] <= files["bbc-test4.jsonl"]
    assert all(q["history"] for q in load_questions(QUESTIONS / "bbc-test-followup.jsonl"))
    # A second held-out batch (written after the first was run) on other bbc-test4 articles.
    assert files["bbc-test-followup2.jsonl"] <= files["bbc-test4.jsonl"] - files["bbc-test-followup.jsonl"]
    assert all(q["history"] for q in load_questions(QUESTIONS / "bbc-test-followup2.jsonl"))
    train = load_questions(QUESTIONS / "bbc-train.jsonl")
    train_files = files["bbc-train.jsonl"] | {q["about"] for q in train if q["type"] == "unanswerable"}
    assert not train_files & (seen | files["bbc-dev2.jsonl"] | files["bbc-test.jsonl"] | files["bbc-test2.jsonl"])
    assert all(number(d) > 200 for d in files["bbc-test.jsonl"])
    assert all(number(d) > 200 for d in files["bbc-test2.jsonl"])
    assert not files["bbc-test2.jsonl"] & files["bbc-test.jsonl"]
    # bbc-test3 (session 7): articles numbered above 200 that no other set uses, evidence or "about".
    test3 = _articles_of("bbc-test3.jsonl")
    assert all(number(d) > 200 for d in test3)
    assert not test3 & set().union(*(f for name, f in files.items() if name != "bbc-test3.jsonl"), train_files, {q["about"] for q in unanswerable})
    # bbc-test4 (session 10): the same, and one question per article.
    test4 = _articles_of("bbc-test4.jsonl")
    assert all(number(d) > 200 for d in test4) and len(test4) == len(load_questions(QUESTIONS / "bbc-test4.jsonl"))
    # The held-out follow-ups (session 13) continue conversations on bbc-test4's articles (checked above).
    others = (f for name, f in files.items() if name not in ("bbc-test4.jsonl", "bbc-test-followup.jsonl", "bbc-test-followup2.jsonl"))
    assert not test4 & set().union(*others, train_files, {q["about"] for q in unanswerable})
    assert len(load_questions(QUESTIONS / "bbc-dev.jsonl")) >= 60 and len(load_questions(QUESTIONS / "seeds.jsonl")) >= 15


def _articles_of(name: str) -> set[str]:
    """Every article a question file uses: its evidence, and what its unanswerable questions are about."""
    return {d for q in load_questions(QUESTIONS / name) for d in [*(e["doc"] for e in q["evidence"]), q.get("about")] if d}


def _copies(corpora, docs: set[str], others: set[str]) -> list[str]:
    """The ``docs`` that share a title or a sentence with one of ``others``: the BBC corpus repeats
    stories under other file names, so a different file name is not a different article."""
    if BBC not in corpora:
        pytest.skip(f"corpus not found at {BBC}")
    articles = corpora[BBC]
    splitter = SentenceSplitter()

    def sentences(doc):  # long enough to be the same reporting, not a stock phrase
        return {s.text for s in splitter.split(articles[doc]) if len(s.text) > 40}

    titles = {articles[d].title.lower() for d in others}
    seen = set().union(*(sentences(d) for d in others))
    return [d for d in docs if articles[d].title.lower() in titles or sentences(d) & seen]


@pytest.mark.parametrize("held_out", ["bbc-test3.jsonl", "bbc-test4.jsonl"])
def test_the_newer_held_out_sets_share_no_title_or_sentence_with_any_other_set(held_out, corpora):
    """bbc-test3's and bbc-test4's articles were chosen so: no other set's article is a copy of one of them."""
    # The held-out follow-ups (session 13) reuse bbc-test4's own articles on purpose.
    follow_ups = {"bbc-test-followup.jsonl", "bbc-test-followup2.jsonl"}
    others = set().union(*(_articles_of(name) for name in SETS if SETS[name] is BBC and name != held_out
                           and not (held_out == "bbc-test4.jsonl" and name in follow_ups)))
    assert not _copies(corpora, _articles_of(held_out), others)


def test_the_training_articles_share_no_title_or_sentence_with_a_held_out_article(corpora):
    """A training article must not be a copy of a held-out one."""
    held = {e["doc"] for name in ("bbc-test.jsonl", "bbc-test2.jsonl", "bbc-test3.jsonl", "bbc-test4.jsonl")
            for q in load_questions(QUESTIONS / name) for e in q["evidence"]}
    assert not _copies(corpora, _articles_of("bbc-train.jsonl"), held)
