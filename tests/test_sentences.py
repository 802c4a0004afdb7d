"""Sentences keep exact offsets, and the splitter does not break on abbreviations, decimals or quotes."""

import pytest

from rag.corpus import load_folder
from rag.sentences import SentenceSplitter
from rag.types import Article
from tests.conftest import BBC, SHIPPED


def split(text: str) -> list[str]:
    return [s.text for s in SentenceSplitter().split(Article(id="a", text=text))]


def assert_offsets(articles) -> int:
    splitter = SentenceSplitter()
    n = 0
    for a in articles:
        sentences = splitter.split(a)
        assert sentences or not a.text.strip(), a.id
        prev_end = 0
        for i, s in enumerate(sentences):
            assert a.text[s.start : s.end] == s.text, (a.id, i)
            assert s.index == i and s.start >= prev_end and s.text == s.text.strip() and s.text
            prev_end = s.end
        n += len(sentences)
    return n


def test_offsets_round_trip_over_shipped_corpus():
    articles, skipped, _ = load_folder(SHIPPED)
    assert len(articles) == 2 and not skipped
    assert assert_offsets(articles) > 30


@pytest.mark.skipif(not BBC.is_dir(), reason=f"BBC dataset not found at {BBC}")
def test_offsets_round_trip_over_bbc_corpus():
    articles, skipped, warnings = load_folder(BBC)
    assert len(articles) == 2225
    assert assert_offsets(articles) > 40000


def test_abbreviations_do_not_end_sentences():
    assert split("Dr. Smith met U.S. officials on Jan. 5 in Washington. Talks went well.") == [
        "Dr. Smith met U.S. officials on Jan. 5 in Washington.",
        "Talks went well.",
    ]


def test_decimals_and_currency_stay_whole():
    assert split("Shares rose 2.5% to $11.1bn. Profit was £3.5m.") == ["Shares rose 2.5% to $11.1bn.", "Profit was £3.5m."]


def test_quoted_speech_stays_with_its_attribution():
    assert split('"We are happy," he said. "Is it over?" she asked. It was.') == [
        '"We are happy," he said.',
        '"Is it over?" she asked.',
        "It was.",
    ]


def test_headlines_and_paragraphs_are_their_own_sentences():
    text = "Ad sales boost Time Warner profit\n\nQuarterly profits jumped 76%. Sales rose 2%.\n"
    assert split(text) == ["Ad sales boost Time Warner profit", "Quarterly profits jumped 76%.", "Sales rose 2%."]


def test_unicode_and_odd_whitespace_keep_offsets():
    text = "  Café owners said “no” — twice.\u00a0Then   they left.\r\nÉmile agreed. "
    a = Article(id="u", text=text)
    sentences = SentenceSplitter().split(a)
    assert [text[s.start : s.end] for s in sentences] == [s.text for s in sentences]
    assert sentences[0].text.startswith("Café") and sentences[-1].text == "Émile agreed."


def test_a_very_long_line_is_split_into_the_same_sentences_as_short_ones():
    # JSONL exports often put a whole article on one line; pysbd alone is quadratic in its length.
    sentences = [f"Mr. Smith of Acme Inc. said sales rose {i}.5% in Jan. {i % 28 + 1} to $3.{i}bn." for i in range(3000)]
    line = " ".join(sentences)
    article = Article(id="a", text="Headline\n" + line + "\nLast line.")
    got = SentenceSplitter().split(article)
    assert [s.text for s in got] == ["Headline", *sentences, "Last line."]
    assert all(article.text[s.start : s.end] == s.text for s in got)
