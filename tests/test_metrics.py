"""The evaluation metrics on hand-made cases whose right values are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.metrics import (
    Span,
    aggregate,
    bootstrap_ratio,
    article_rank,
    best_f1,
    by_type,
    citation_hits,
    contains_answer,
    first_match_rank,
    full_recall,
    golds_cited,
    hit_at,
    locate,
    matches,
    percentile,
    reciprocal_rank,
    score_question,
    short_answer_right,
    sign_test,
    token_f1,
    wilson,
)
from tests.conftest import eval_script

TEXT = "Shares fell. It lost 464,000 subscribers in the quarter. Profits rose 5%."
GOLD = Span("a.txt", 13, 56, "It lost 464,000 subscribers in the quarter.")


def test_locate_finds_exact_and_loosely_written_sentences():
    assert locate(TEXT, GOLD.text) == (13, 56)
    # different spacing, case and quote style still locate the same span
    assert locate("He said “no way”  today. Next.", 'he said "no way" today.') == (0, 24)
    assert locate(TEXT, "A sentence that is not there.") is None


def test_match_by_overlap_needs_half_of_the_shorter_span():
    assert matches(Span("a.txt", 13, 56, "whatever the splitter made"), GOLD)
    assert matches(Span("a.txt", 30, 70, "x"), GOLD)  # 26 shared chars >= 43/2
    assert not matches(Span("a.txt", 50, 90, "x"), GOLD)  # 6 shared chars < 40/2
    assert not matches(Span("b.txt", 13, 56, "other article"), GOLD)


def test_match_by_normalised_text_covers_duplicate_articles():
    dup = Span("copy.txt", 200, 243, "it lost 464,000   subscribers in the QUARTER.")
    assert matches(dup, GOLD)
    chunk = Span("copy.txt", 0, 500, "Intro. It lost 464,000 subscribers in the quarter. More.")
    assert not matches(chunk, GOLD)
    assert matches(chunk, GOLD, contain=True)


def test_unlocated_gold_matches_only_by_text():
    gold = Span("a.txt", None, None, "Profits rose 5%.")
    assert matches(Span("a.txt", 57, 73, "Profits rose 5%."), gold)
    assert not matches(Span("a.txt", 57, 73, "Profits rose 6%."), gold)


def test_known_ranking_gives_known_hits_and_mrr():
    miss = Span("z.txt", 0, 10, "nothing")
    ranked = [miss, miss, Span("a.txt", 13, 56, GOLD.text), miss]
    assert hit_at(ranked, [GOLD], 1) == 0.0
    assert hit_at(ranked, [GOLD], 2) == 0.0
    assert hit_at(ranked, [GOLD], 3) == 1.0
    assert reciprocal_rank(ranked, [GOLD]) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, [GOLD], k=2) == 0.0
    assert reciprocal_rank([miss] * 12, [GOLD]) == 0.0


def test_article_rank_is_coarser_than_sentence_rank():
    ranked = [Span("z.txt", 0, 5, "x"), Span("a.txt", 60, 70, "another sentence of the gold article")]
    assert article_rank(ranked, [GOLD]) == 2
    assert first_match_rank(ranked, [GOLD]) is None


def test_full_recall_needs_every_gold_sentence():
    other = Span("b.txt", 0, 10, "Second gold.")
    ranked = [Span("a.txt", 13, 56, "x"), Span("c.txt", 0, 5, "y")]
    assert full_recall(ranked, [GOLD, other]) == 0.0
    assert full_recall(ranked + [Span("b.txt", 0, 10, "z")], [GOLD, other]) == 1.0
    assert full_recall(ranked + [Span("b.txt", 0, 10, "z")], [GOLD, other], k=2) == 0.0


def test_contains_answer_uses_aliases_and_needs_every_part():
    assert contains_answer("IT LOST 464000 SUBSCRIBERS", "464,000", ["464000"])
    assert not contains_answer("It lost subscribers", "464,000", ["464000"])
    assert contains_answer("Founded in autumn 2018, a leader by 2030.", "autumn 2018; 2030")
    assert not contains_answer("", "x")


def test_token_f1_is_squad_style():
    assert token_f1("464,000", "464000") == 1.0  # punctuation removed
    assert token_f1("The Fuel Prices", "fuel prices") == 1.0  # articles and case ignored
    assert token_f1("high fuel prices were blamed", "fuel prices") == pytest.approx(2 * (2 / 5) * 1 / (2 / 5 + 1))
    assert token_f1("rain", "fuel prices") == 0.0
    assert best_f1(["a long answer sentence about fuel prices", "fuel prices"], "high fuel prices") == pytest.approx(0.8)
    assert best_f1(["", "  "], "x") == 0.0


def test_citation_precision_and_recall_counts():
    right = Span("a.txt", 13, 56, GOLD.text)
    holds_answer = Span("q.txt", 0, 30, "Some 464,000 customers went.")
    wrong = Span("q.txt", 40, 60, "Unrelated.")
    assert citation_hits([right, holds_answer, wrong], [GOLD], "464,000") == 2
    second = Span("b.txt", 0, 10, "Second gold.")
    assert golds_cited([right, wrong], [GOLD, second]) == 1


def test_percentile_interpolates():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


def _score(qtype, golds, ranked, answer_text, abstained, cited, answer="464,000", support=0.8):
    return score_question(qtype, golds, ranked, answer=answer, aliases=[], answer_text=answer_text,
                          short_answer="", abstained=abstained, cited=cited, support=support)


def test_scores_and_aggregate_over_types():
    right = Span("a.txt", 13, 56, GOLD.text)
    wrong = Span("q.txt", 0, 9, "Off topic.")
    good = _score("single", [GOLD], [right], right.text, False, [right])
    wrong_answer = _score("single", [GOLD], [wrong, right], "Off topic.", False, [wrong])
    false_abstain = _score("single", [GOLD], [wrong], "The articles don't say.", True, [], support=0.0)
    abstained_ok = _score("unanswerable", [], [wrong], "The articles don't say.", True, [], answer="", support=0.0)
    answered_unanswerable = _score("unanswerable", [], [wrong], "Off topic.", False, [wrong], answer="")

    assert good["correct"] == 1.0 and good["f1"] == pytest.approx(token_f1(right.text, "464,000"))
    assert wrong_answer["correct"] == 0.0 and wrong_answer["rr@10"] == 0.5
    assert false_abstain["correct"] == 0.0 and false_abstain["f1"] == 0.0
    assert abstained_ok["correct"] == 1.0 and answered_unanswerable["correct"] == 0.0

    scores = [good, wrong_answer, false_abstain, abstained_ok, answered_unanswerable]
    m = aggregate(scores, seconds=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert m["n"] == 5 and m["answerable"] == 3
    assert m["hit@1"] == pytest.approx(1 / 3)
    assert m["hit@5"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["correct"] == pytest.approx(2 / 5)
    assert m["citation_precision"] == pytest.approx(1 / 2)  # right + wrong cited by answered answerables
    assert m["citation_recall"] == pytest.approx(1 / 3)  # one of three gold sentences cited
    assert m["article_hit@1"] == pytest.approx(1 / 3)  # only the first has a gold-article hit on top
    assert m["article_hit@5"] == pytest.approx(2 / 3)
    assert m["cited_chars"] == pytest.approx((len(right.text) + len(wrong.text)) / 2)
    assert m["abstention_accuracy"] == pytest.approx(1 / 2)
    assert m["false_abstention"] == pytest.approx(1 / 3)
    assert m["support"] == pytest.approx(0.8)  # abstained answers do not count
    assert m["latency_p50"] == 3.0

    typed = by_type(scores)
    assert set(typed) == {"single", "unanswerable", "overall"}
    assert typed["unanswerable"]["hit@5"] is None
    assert typed["unanswerable"]["abstention_accuracy"] == 0.5
    assert typed["single"]["abstention_accuracy"] is None


def test_short_answer_is_scored_only_where_the_answer_is_right():
    right = Span("a.txt", 13, 56, GOLD.text)
    wrong = Span("q.txt", 0, 9, "Off topic.")

    def scored(short, cited):
        return score_question("single", [GOLD], [cited], answer="464,000", aliases=[], answer_text=cited.text,
                              short_answer=short, abstained=False, cited=[cited], support=0.8)

    exact, near, other, missing = (scored(x, right) for x in ("464,000", "464,000 subscribers", "the quarter", ""))
    assert (exact["short_right"], near["short_right"], other["short_right"], missing["short_right"]) == (1.0, 1.0, 0.0, 0.0)
    assert scored("464,000", wrong)["short_right"] is None  # a wrong answer has no short answer to judge
    assert aggregate([exact, other, scored("", wrong)])["short_answer"] == pytest.approx(1 / 2)
    assert short_answer_right("$1.13bn", "£600m", ["$1.13bn"]) and not short_answer_right("76%", "$1.13bn")


def test_a_rate_from_few_questions_has_a_wide_interval_and_from_many_a_narrow_one():
    few, many = wilson(22, 36), wilson(220, 360)
    assert few[0] < 22 / 36 < few[1] and many[0] < 22 / 36 < many[1]
    assert few[1] - few[0] > 0.3 > 0.15 > many[1] - many[0]
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)  # stays in 0..1
    assert wilson(3, 0) is None


def test_a_bootstrap_interval_surrounds_the_pooled_ratio_and_is_reproducible():
    right, cited = [1, 0, 2, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 1, 2, 2]  # 8 of 11 citations right
    ci = bootstrap_ratio(right, cited)
    assert ci[0] < 8 / 11 < ci[1] and ci == bootstrap_ratio(right, cited)
    assert bootstrap_ratio([1.0, 1.0, 1.0], [1, 1, 1]) == (1.0, 1.0)  # nothing varies
    assert bootstrap_ratio([1.0], [1]) is None and bootstrap_ratio([0, 0], [0, 0]) is None


def test_aggregate_reports_intervals_for_the_headline_rates():
    right = Span("a.txt", 13, 56, GOLD.text)
    wrong = Span("q.txt", 0, 9, "Off topic.")
    scores = [_score("single", [GOLD], [right], right.text, False, [right])] * 6 + \
        [_score("single", [GOLD], [wrong, right], "Off topic.", False, [wrong])] * 4
    m = aggregate(scores)
    for key in ("hit@1", "mrr@10", "correct", "citation_precision"):
        lo, hi = m["ci95"][key]
        assert lo < m[key] < hi, key
    assert m["ci95"]["hit@1"] == pytest.approx(wilson(6, 10))
    assert m["ci95"]["abstention_accuracy"] is None  # no unanswerable question


def test_a_sign_test_counts_changed_questions_and_ignores_ties():
    up = sign_test([0.0] * 8 + [1.0] * 5, [1.0] * 8 + [1.0] * 5)
    assert (up["up"], up["down"], up["same"]) == (8, 0, 5)
    assert up["p"] == pytest.approx(2 * 0.5**8)  # two-sided: 8-0 as extreme either way
    even = sign_test([1, 0, 1, 0], [0, 1, 1, 0])
    assert (even["up"], even["down"], even["p"]) == (1, 1, 1.0)
    assert sign_test([0.5, 1.0], [0.5, 1.0]) == {"up": 0, "down": 0, "same": 2, "p": 1.0}
    with pytest.raises(ValueError, match="not the same questions"):
        sign_test([1.0], [1.0, 0.0])


def _run(folder: Path, scores: dict[str, dict]) -> Path:
    folder.mkdir()
    with open(folder / "predictions.jsonl", "w", encoding="utf-8") as f:
        for qid, s in scores.items():
            f.write(json.dumps({"id": qid, "type": s["type"], "scores": s, "timings": {"retrieve_seconds": 0.05}}) + "\n")
    return folder


def test_compare_pairs_the_same_questions_across_runs_and_counts_what_changed(tmp_path):
    compare = eval_script("compare")
    right = Span("a.txt", 13, 56, GOLD.text)
    wrong = Span("q.txt", 0, 9, "Off topic.")
    good = _score("single", [GOLD], [right], right.text, False, [right])
    second = _score("single", [GOLD], [wrong, right], "Off topic.", False, [wrong])
    declined = _score("unanswerable", [], [wrong], "The articles don't say.", True, [], answer="", support=0.0)
    # two questions improve (second -> good), one gets worse, one unanswerable stays declined
    before = [_run(tmp_path / "b1", {"q1": second, "q2": second}), _run(tmp_path / "b2", {"q3": good, "q4": declined})]
    after = [_run(tmp_path / "a1", {"q1": good, "q2": good}), _run(tmp_path / "a2", {"q3": second, "q4": declined})]
    table = compare.compare(compare.load_runs(before), compare.load_runs(after))
    row = next(line for line in table.splitlines() if line.startswith("| sentence hit@1 (3)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].startswith("0.333") and cells[2].startswith("0.667")
    assert cells[3:6] == ["2", "1", "0"] and float(cells[6]) == pytest.approx(1.0)
    assert next(line for line in table.splitlines() if line.startswith("| abstained, unanswerable (1)")).endswith("| 0 | 0 | 1 | 1.000 |")
    with pytest.raises(SystemExit, match="not the same questions"):
        compare.compare(compare.load_runs(before[:1]), compare.load_runs(after))
