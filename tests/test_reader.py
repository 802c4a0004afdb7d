"""The reader (rag/reader.py) reads question and sentence together, and the second stage uses it on its best few."""

import numpy as np
import pytest

from rag.config import Config
from rag.pipeline import Newsdesk
from rag.reader import MAX_TOKENS, OnnxReader, passage, reader_settings
from tests.conftest import write_corpus

# Sentences of the shipped Shanghai-lab article, each answering one question below.
SENTENCES = [
    "Archived versions of the page show that the lab was established in autumn 2018 and was tasked with "
    "“actively fostering collaboration with the research community.”",
    "Media reports suggest the layoffs impacted several hundred employees globally.",
    "The message was widely shared across Chinese social media platforms this week.",
    "A dedicated webpage for the Shanghai lab on the AWS China site became inaccessible on Friday.",
]


@pytest.mark.parametrize("question, answering", [
    ("How many employees did the AWS layoffs affect?", 1),
    ("On which day did the Shanghai lab's web page go offline?", 3),
])
def test_the_shipped_reader_scores_the_answering_sentence_above_the_others(question, answering):
    scores = OnnxReader().score(question, SENTENCES)
    assert scores.shape == (len(SENTENCES),) and np.all((scores >= 0) & (scores <= 1))
    assert int(np.argmax(scores)) == answering


def test_a_passage_is_the_sentence_headed_by_its_title_once():
    assert passage("Fiat cuts jobs", "It will shed 500 posts.") == "Fiat cuts jobs. It will shed 500 posts."
    assert passage("Fiat cuts jobs", "Fiat cuts jobs") == "Fiat cuts jobs"  # a headline is not headed twice
    assert passage("", "It will shed 500 posts.") == "It will shed 500 posts."


def test_a_passage_with_context_keeps_the_sentence_first_so_truncation_cuts_only_context():
    p = passage("Fiat cuts jobs", "It will shed 500 posts.", "The carmaker lost money.")
    assert p == "It will shed 500 posts. [SEP] Fiat cuts jobs. The carmaker lost money."
    assert passage("Fiat cuts jobs", "Fiat cuts jobs", "") == "Fiat cuts jobs [SEP] Fiat cuts jobs."  # a first sentence


def test_how_a_reader_model_reads_comes_with_it(tmp_path):
    assert reader_settings(tmp_path) == {"context": False, "max_tokens": MAX_TOKENS}  # no reader.json: an older model
    (tmp_path / "reader.json").write_text('{"context": true, "max_tokens": 160}\n')
    assert reader_settings(tmp_path) == {"context": True, "max_tokens": 160}
    assert OnnxReader(tmp_path).context is True


def test_a_missing_reader_model_says_how_to_run_without_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="reader=False"):
        OnnxReader(tmp_path).score("Who?", ["Someone."])


class KeywordReader:
    """A deterministic reader: a passage holding the keyword answers (1.0); any other does not (0.0)."""

    def __init__(self, keyword: str, context: bool = False) -> None:
        self.keyword = keyword
        self.context = context
        self.read: list[str] = []

    def score(self, question, passages):
        self.read.extend(passages)
        return np.array([float(self.keyword in p) for p in passages])


ARTICLES = {
    "rates.txt": "Bank holds rates\n\nThe Bank of England kept interest rates at 4.75% on Thursday. "
    "Economists had expected the bank to hold interest rates. The vote on rates was unanimous, the bank said. "
    "Rates have been at 4.75% since August.\n",
    "football.txt": "Arsenal beat Chelsea\n\nArsenal won 2-1 at Highbury on Saturday. Thierry Henry scored twice.\n",
}


def test_the_reader_reorders_the_best_candidates_and_reads_no_others(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    config = Config(corpus=corpus, index=tmp_path / "index", reader_candidates=3, reader_weight=5.0, reader_skip_margin=None)
    desk = Newsdesk(config.with_(reader=False), embedder=fake_embedder)
    desk.ingest()
    question = "Did the bank hold interest rates?"
    plain = desk.retrieve(question, k=10)
    assert all("reader" not in h.scores for h in plain)
    # The third best sentence is the one the reader says answers: it moves to the top.
    reader = KeywordReader(plain[2].text)
    read = Newsdesk(config, embedder=fake_embedder, reader=reader)
    hits = read.retrieve(question, k=10)
    assert hits[0].text == plain[2].text and hits[0].scores["reader"] == 1.0
    assert len(reader.read) == 3  # only the best three were read ...
    assert sum("reader" in h.scores for h in hits) == 3
    assert {h.text for h in hits} == {h.text for h in plain}  # ... and nothing else changed but the order
    assert reader.read[0].startswith("Bank holds rates. ")  # each sentence headed by its title


def test_a_reader_with_context_reads_each_sentence_with_the_one_before_it(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    config = Config(corpus=corpus, index=tmp_path / "index", reader_skip_margin=None)
    desk = Newsdesk(config.with_(reader=False), embedder=fake_embedder)
    desk.ingest()
    reader = KeywordReader("Rates have been", context=True)
    hits = Newsdesk(config, embedder=fake_embedder, reader=reader).retrieve("Since when have rates been at 4.75%?", k=10)
    by_text = {h.text: h for h in hits}
    assert reader.read
    for p in reader.read:
        sentence, context = p.split(" [SEP] ")
        h = by_text[sentence]
        title, _, before = context.partition(". ")
        assert title == h.title
        if h.sentence_index > 0:
            # the sentence that ends right before this one in its article
            assert before and desk.article(h.article_id)["text"][: h.start].rstrip().endswith(before)
    assert any(p.startswith("Rates have been at 4.75% since August. [SEP] Bank holds rates. The vote on rates")
               for p in reader.read)


def test_the_reader_is_skipped_only_when_the_best_sentence_leads_clearly(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    config = Config(corpus=corpus, index=tmp_path / "index", reader_candidates=3)
    desk = Newsdesk(config.with_(reader=False), embedder=fake_embedder)
    desk.ingest()
    question = "Did the bank hold interest rates?"
    plain = desk.retrieve(question, k=10)
    lead = plain[0].score - plain[1].score
    assert lead > 0
    skipped = KeywordReader(plain[2].text)
    hits = Newsdesk(config.with_(reader_skip_margin=lead / 2), embedder=fake_embedder, reader=skipped).retrieve(question, k=10)
    assert skipped.read == [] and [h.text for h in hits] == [h.text for h in plain]
    assert all("reader" not in h.scores for h in hits)
    read = KeywordReader(plain[2].text)
    hits = Newsdesk(config.with_(reader_skip_margin=lead * 2), embedder=fake_embedder, reader=read).retrieve(question, k=10)
    assert len(read.read) == 3 and "reader" in hits[0].scores


def test_an_answer_is_ranked_with_more_reading_than_a_retrieval(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    config = Config(corpus=corpus, index=tmp_path / "index", reader_candidates=3, reader_weight=5.0)
    desk = Newsdesk(config.with_(reader=False), embedder=fake_embedder)
    desk.ingest()
    question = "Did the bank hold interest rates?"
    plain = desk.retrieve(question, k=10)
    lead = plain[0].score - plain[1].score
    # Retrieving has 50 ms, asking 300 ms: with this lead a retrieval skips the reader, an answer reads.
    reader = KeywordReader(plain[2].text)
    both = Newsdesk(config.with_(reader_skip_margin=lead / 2, answer_reader_skip_margin=lead * 2),
                    embedder=fake_embedder, reader=reader)
    assert [h.text for h in both.retrieve(question, k=10)] == [h.text for h in plain] and reader.read == []
    answer = both.ask(question)
    assert len(reader.read) == 3 and answer.hits[0].text == plain[2].text
    assert answer.citations[0].sentence == plain[2].text  # the answer cites what the reader put first
    assert both.retrieve(question, k=10, for_answer=True)[0].text == plain[2].text


def test_warming_up_loads_the_reader_even_when_retrieval_would_skip_it(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", ARTICLES)
    reader = KeywordReader("never")
    desk = Newsdesk(Config(corpus=corpus, index=tmp_path / "index", reader_skip_margin=0.0), embedder=fake_embedder, reader=reader)
    desk.ingest()
    desk.warm()
    assert reader.read  # the first real question does not wait for the model to load
