"""Pure scoring functions for question-answering evaluation: retrieval, answers, citations, latency.

Everything here works on plain values (``Span``s, strings, lists of per-question scores), so it
can be tested on hand-made cases and reused for any system (our engine, the llama-index baseline).

A retrieved or cited span MATCHES a gold evidence sentence when it is in the same article and the
two character spans overlap by at least half of the shorter one, or when their whitespace- and
case-normalised texts are equal (the BBC corpus carries duplicate articles). For chunk-level
systems ``contain=True`` also accepts a chunk whose text contains the gold sentence.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

TYPES = ("single", "multi", "unanswerable")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})


@dataclass(frozen=True)
class Span:
    """A piece of an article: retrieved sentence, cited sentence, chunk, or gold evidence.

    ``start``/``end`` are character offsets in the article text; None when unknown (a gold
    sentence that could not be located), in which case only the text rule can match.
    """

    article_id: str
    start: int | None
    end: int | None
    text: str


def normalize(text: str) -> str:
    """Lower case, typographic quotes made plain, runs of whitespace made one space."""
    return " ".join(text.translate(_QUOTES).lower().split())


def locate(article_text: str, sentence: str) -> tuple[int, int] | None:
    """The (start, end) of ``sentence`` in ``article_text``: exact, else ignoring case, quotes and spacing.

    >>> locate("One. Two  words here. Three.", "two words here.")
    (5, 21)
    """
    i = article_text.find(sentence)
    if i >= 0:
        return i, i + len(sentence)
    words = sentence.translate(_QUOTES).split()
    if not words:
        return None
    # The same words in order, any whitespace between them, any quote style.
    pattern = r"\s+".join(re.escape(w) for w in words)
    pattern = pattern.replace("'", "['’‘]").replace('"', '["“”]')
    m = re.search(pattern, article_text, flags=re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def overlap(a: Span, b: Span) -> int:
    """Characters shared by two spans of the same article (0 for different articles or unknown offsets)."""
    if a.article_id != b.article_id or None in (a.start, a.end, b.start, b.end):
        return 0
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def matches(span: Span, gold: Span, contain: bool = False) -> bool:
    """Does a retrieved/cited ``span`` match a ``gold`` evidence sentence (see module docstring)?"""
    shared = overlap(span, gold)
    if shared:
        shorter = min(span.end - span.start, gold.end - gold.start)
        if shorter > 0 and shared >= shorter / 2:
            return True
    s, g = normalize(span.text), normalize(gold.text)
    if not g:
        return False
    return s == g or (contain and g in s)


def first_match_rank(ranked: Sequence[Span], golds: Sequence[Span], k: int = 10, contain: bool = False) -> int | None:
    """1-based rank of the first of the top ``k`` spans that matches any gold span, or None."""
    for rank, span in enumerate(ranked[:k], 1):
        if any(matches(span, g, contain) for g in golds):
            return rank
    return None


def article_rank(ranked: Sequence[Span], golds: Sequence[Span], k: int = 10, contain: bool = False) -> int | None:
    """1-based rank of the first of the top ``k`` spans from a gold article (or matching a gold span).

    Coarser than ``first_match_rank``: it compares a sentence retriever with a chunk retriever whose
    chunks span most of an article.
    """
    gold_articles = {g.article_id for g in golds}
    for rank, span in enumerate(ranked[:k], 1):
        if span.article_id in gold_articles or any(matches(span, g, contain) for g in golds):
            return rank
    return None


def hit_at(ranked: Sequence[Span], golds: Sequence[Span], k: int, contain: bool = False) -> float:
    """1.0 when one of the top ``k`` spans matches a gold span, else 0.0."""
    return 1.0 if first_match_rank(ranked, golds, k, contain) else 0.0


def reciprocal_rank(ranked: Sequence[Span], golds: Sequence[Span], k: int = 10, contain: bool = False) -> float:
    """1/rank of the first matching span within the top ``k`` (0.0 when none matches): MRR@k per question.

    >>> g = [Span("a", 10, 20, "gold")]
    >>> reciprocal_rank([Span("b", 0, 5, "x"), Span("a", 12, 20, "old")], g)
    0.5
    """
    rank = first_match_rank(ranked, golds, k, contain)
    return 1.0 / rank if rank else 0.0


def full_recall(ranked: Sequence[Span], golds: Sequence[Span], k: int = 10, contain: bool = False) -> float:
    """1.0 when every gold span is matched by some span in the top ``k``, else 0.0."""
    if not golds:
        return 0.0
    top = ranked[:k]
    return 1.0 if all(any(matches(s, g, contain) for s in top) for g in golds) else 0.0


def _answer_forms(answer: str, aliases: Iterable[str]) -> list[str]:
    return [a for a in [answer, *aliases] if a and a.strip()]


def contains_answer(text: str, answer: str, aliases: Iterable[str] = ()) -> bool:
    """Is the gold answer (or an alias) in ``text``, ignoring case, quotes and spacing?

    A gold form with parts separated by ';' (multi-part questions) needs every part.

    >>> contains_answer("It lost 464,000 subscribers.", "464,000")
    True
    >>> contains_answer("Founded in autumn 2018.", "autumn 2018; 2030")
    False
    """
    t = normalize(text)
    for form in _answer_forms(answer, aliases):
        parts = [normalize(p) for p in form.split(";") if p.strip()]
        if parts and all(p in t for p in parts):
            return True
    return False


def _squad_tokens(text: str) -> list[str]:
    """SQuAD answer normalisation: lower case, no punctuation, no articles, split on whitespace."""
    text = text.translate(_QUOTES).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style token F1 between two strings.

    >>> round(token_f1("the high fuel prices", "fuel prices"), 3)
    0.8
    """
    p, g = _squad_tokens(prediction), _squad_tokens(gold)
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def best_f1(predictions: Iterable[str], answer: str, aliases: Iterable[str] = ()) -> float:
    """The best token F1 over every (prediction, gold form) pair; empty predictions are skipped."""
    preds = [p for p in predictions if p and p.strip()]
    forms = _answer_forms(answer, aliases)
    if not preds or not forms:
        return 0.0
    return max(token_f1(p, g) for p in preds for g in forms)


def short_answer_right(short: str, answer: str, aliases: Iterable[str] = ()) -> bool:
    """Is the short answer (the span shown in bold) the gold answer: containing it, or close to it?

    >>> short_answer_right("464,000", "464,000 subscribers")
    True
    >>> short_answer_right("two", "521")
    False
    """
    return bool(short.strip()) and (contains_answer(short, answer, aliases) or best_f1([short], answer, aliases) >= 0.5)


def citation_hits(cited: Sequence[Span], golds: Sequence[Span], answer: str, aliases: Iterable[str] = (),
                  contain: bool = False) -> int:
    """How many citations are right: they match a gold sentence or contain the gold answer."""
    aliases = list(aliases)
    return sum(
        1 for c in cited
        if any(matches(c, g, contain) for g in golds) or contains_answer(c.text, answer, aliases)
    )


def golds_cited(cited: Sequence[Span], golds: Sequence[Span], contain: bool = False) -> int:
    """How many gold evidence sentences are matched by at least one citation."""
    return sum(1 for g in golds if any(matches(c, g, contain) for c in cited))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation; None for no values.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def score_question(
    qtype: str,
    golds: Sequence[Span],
    ranked: Sequence[Span],
    *,
    answer: str,
    aliases: Sequence[str],
    answer_text: str,
    short_answer: str,
    abstained: bool,
    cited: Sequence[Span],
    support: float | None,
    contain: bool = False,
    by_llm: bool | None = None,
) -> dict:
    """Per-question scores; ``aggregate`` turns a list of them into the reported metrics.

    Retrieval and answer-quality fields are None where they do not apply (unanswerable questions).
    ``by_llm``: whether a configured language model wrote what was shown (None: no model configured).
    """
    answerable = qtype != "unanswerable"
    s: dict = {"type": qtype, "answerable": answerable, "abstained": bool(abstained), "short_right": None}
    if answerable:
        rank = first_match_rank(ranked, golds, 10, contain)
        arank = article_rank(ranked, golds, 10, contain)
        s.update({
            "rank": rank,
            "hit@1": float(bool(rank and rank <= 1)),
            "hit@5": float(bool(rank and rank <= 5)),
            "hit@10": float(bool(rank)),
            "rr@10": 1.0 / rank if rank else 0.0,
            "full_recall@10": full_recall(ranked, golds, 10, contain),
            "article_hit@1": float(bool(arank and arank <= 1)),
            "article_hit@5": float(bool(arank and arank <= 5)),
            "correct": float(not abstained and contains_answer(answer_text, answer, aliases)),
            "f1": 0.0 if abstained else best_f1([answer_text, short_answer], answer, aliases),
            "citations": 0 if abstained else len(cited),
            "citations_right": 0 if abstained else citation_hits(cited, golds, answer, aliases, contain),
            "cited_chars": 0 if abstained else sum(len(c.text) for c in cited),
            "golds": len(golds),
            "golds_cited": 0 if abstained else golds_cited(cited, golds, contain),
        })
        if s["correct"] and qtype == "single":
            s["short_right"] = float(short_answer_right(short_answer, answer, aliases))
    else:
        s.update({"rank": None, "hit@1": None, "hit@5": None, "hit@10": None, "rr@10": None,
                  "full_recall@10": None, "article_hit@1": None, "article_hit@5": None,
                  "correct": float(bool(abstained)), "f1": None,
                  "citations": 0, "citations_right": 0, "cited_chars": 0, "golds": 0, "golds_cited": 0})
    s["support"] = None if abstained or support is None else float(support)
    s["by_llm"] = None if by_llm is None else float(by_llm)
    return s


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``successes / n``; None when ``n`` is 0.

    >>> [round(x, 3) for x in wilson(22, 36)]
    [0.449, 0.752]
    """
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def sign_test(before: Sequence[float], after: Sequence[float]) -> dict:
    """Question by question, how often a score went up or down between two runs, and the
    two-sided sign-test p-value of that split (ties left out): is the change more than noise?

    >>> r = sign_test([0] * 8 + [1] * 3, [1] * 8 + [1] * 3)
    >>> r["up"], r["down"], r["same"], round(r["p"], 4)
    (8, 0, 3, 0.0078)
    """
    if len(before) != len(after):
        raise ValueError(f"{len(before)} scores before, {len(after)} after: not the same questions")
    up = sum(b > a for a, b in zip(before, after))
    down = sum(b < a for a, b in zip(before, after))
    if up + down == 0:
        p = 1.0
    else:
        from scipy.stats import binomtest

        p = float(binomtest(up, up + down).pvalue)
    return {"up": up, "down": down, "same": len(before) - up - down, "p": p}


def bootstrap_ratio(num: Sequence[float], den: Sequence[float], confidence: float = 0.95,
                    resamples: int = 2000) -> tuple[float, float] | None:
    """A percentile bootstrap interval, resampling questions, of ``sum(num) / sum(den)``.

    With ``den`` all ones it is the interval of a mean (MRR); otherwise of a ratio pooled over
    questions (citation precision: right citations over citations, question by question).
    Seeded, so a report is reproducible. None with fewer than two questions or no denominator.
    """
    import numpy as np
    from scipy.stats import bootstrap

    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if len(a) < 2 or b.sum() <= 0:
        return None
    if np.all(a == a[0]) and np.all(b == b[0]):
        value = float(a.sum() / b.sum())
        return value, value  # every question scored the same: resampling cannot move it

    def ratio(x, y, axis=-1):
        total = y.sum(axis=axis)
        return np.divide(x.sum(axis=axis), total, out=np.zeros_like(total), where=total > 0)

    res = bootstrap((a, b), ratio, paired=True, vectorized=True, n_resamples=resamples, method="percentile",
                    confidence_level=confidence, random_state=0)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return None if math.isnan(low) or math.isnan(high) else (low, high)


def intervals(scores: Sequence[dict]) -> dict[str, tuple[float, float] | None]:
    """95% intervals of the headline metrics, since question sets are small (36 to 131 answerable).

    Rates of yes/no outcomes (hit@k, correct, abstention) get Wilson intervals; MRR and citation
    precision a bootstrap over questions.
    """
    answerable = [s for s in scores if s["answerable"]]
    unanswerable = [s for s in scores if not s["answerable"]]

    def rate(rows, key):
        return wilson(sum(bool(s[key]) for s in rows), len(rows))

    return {
        "hit@1": rate(answerable, "hit@1"),
        "hit@5": rate(answerable, "hit@5"),
        "mrr@10": bootstrap_ratio([s["rr@10"] for s in answerable], [1.0] * len(answerable)),
        "correct": rate(scores, "correct"),
        "citation_precision": bootstrap_ratio([s["citations_right"] for s in answerable],
                                              [s["citations"] for s in answerable]),
        "abstention_accuracy": rate(unanswerable, "abstained"),
        "false_abstention": rate(answerable, "abstained"),
    }


def _mean(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def aggregate(scores: Sequence[dict], seconds: Sequence[float | None] = (),
              retrieval_seconds: Sequence[float | None] = ()) -> dict:
    """Metrics over per-question ``scores`` (from ``score_question``), latencies in seconds.

    Citation precision is micro-averaged over the citations of answerable, non-abstained answers;
    citation recall over all gold evidence sentences of answerable questions.
    """
    answerable = [s for s in scores if s["answerable"]]
    unanswerable = [s for s in scores if not s["answerable"]]
    secs = [t for t in seconds if t is not None]
    rsecs = [t for t in retrieval_seconds if t is not None]
    return {
        "n": len(scores),
        "answerable": len(answerable),
        "hit@1": _mean(s["hit@1"] for s in answerable),
        "hit@5": _mean(s["hit@5"] for s in answerable),
        "hit@10": _mean(s["hit@10"] for s in answerable),
        "mrr@10": _mean(s["rr@10"] for s in answerable),
        "full_recall@10": _mean(s["full_recall@10"] for s in answerable),
        "article_hit@1": _mean(s["article_hit@1"] for s in answerable),
        "article_hit@5": _mean(s["article_hit@5"] for s in answerable),
        "correct": _mean(s["correct"] for s in scores),
        "f1": _mean(s["f1"] for s in answerable),
        "short_answer": _mean(s["short_right"] for s in answerable),
        "citation_precision": _ratio(sum(s["citations_right"] for s in answerable), sum(s["citations"] for s in answerable)),
        "cited_chars": _ratio(sum(s["cited_chars"] for s in answerable), sum(s["citations"] for s in answerable)),
        "citation_recall": _ratio(sum(s["golds_cited"] for s in answerable), sum(s["golds"] for s in answerable)),
        "abstention_accuracy": _mean(float(s["abstained"]) for s in unanswerable),
        "false_abstention": _mean(float(s["abstained"]) for s in answerable),
        "support": _mean(s["support"] for s in scores),
        "by_llm": _mean(s.get("by_llm") for s in scores),
        "latency_p50": percentile(secs, 50),
        "latency_p95": percentile(secs, 95),
        "retrieval_p50": percentile(rsecs, 50),
        "retrieval_p95": percentile(rsecs, 95),
        "ci95": intervals(scores),
    }


def by_type(scores: Sequence[dict], seconds: Sequence[float | None] = (),
            retrieval_seconds: Sequence[float | None] = ()) -> dict:
    """``aggregate`` per question type present, plus ``overall``."""
    seconds = list(seconds) or [None] * len(scores)
    retrieval_seconds = list(retrieval_seconds) or [None] * len(scores)
    out = {}
    for t in TYPES:
        idx = [i for i, s in enumerate(scores) if s["type"] == t]
        if idx:
            out[t] = aggregate([scores[i] for i in idx], [seconds[i] for i in idx], [retrieval_seconds[i] for i in idx])
    out["overall"] = aggregate(scores, seconds, retrieval_seconds)
    return out
