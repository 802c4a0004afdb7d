"""Compare retrieval settings on a question set in one process: granularity, fusion, second-stage weights.

    .venv/bin/python eval/tune.py --index /work/idx/bbc --corpus ../shared/datasets/bbc-news \
        --questions eval/questions/bbc-dev.jsonl --granularity sentence --grid

Prints a markdown table (hit@1/5/10, MRR@10, full evidence recall@10, retrieval p50/p95) per
setting. Question vectors are computed once, so each setting costs only the search itself.

``--fit`` fits the second-stage weights instead, fast: each question's candidates and their
feature rows are collected once, then weights are searched over those rows (ranking the
candidates by ``rows @ weights`` is what the second stage does). It reports 5-fold
cross-validation (weights fitted on four folds, scored on the fifth) beside the current defaults.

``--reader`` sweeps how many candidates the reader reads and when it may be skipped, over reader
scores computed once per question (``--abstain`` sweeps the abstention threshold).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import metrics as M  # noqa: E402
from rag.cli import ensure_index  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.evaluation import gold_spans, load_questions  # noqa: E402
from rag.pipeline import Newsdesk  # noqa: E402
from rag.retrieval import HybridRetriever  # noqa: E402


def open_desk(config: Config) -> Newsdesk:
    """The engine over ``config.index``, ingesting ``config.corpus`` first if it holds nothing for this model."""
    desk = Newsdesk(config)
    ensure_index(desk)
    return desk


def score(desk: Newsdesk, config: Config, questions, vectors, golds) -> dict:
    retriever = HybridRetriever(desk.store, desk.embedder, config)
    rows, secs = [], []
    for q, v, g in zip(questions, vectors, golds):
        t0 = time.perf_counter()
        hits = retriever.retrieve(q["question"], k=10, vector=v)
        secs.append(time.perf_counter() - t0)
        ranked = [M.Span(h.article_id, h.start, h.end, h.text) for h in hits]
        rows.append((M.hit_at(ranked, g, 1), M.hit_at(ranked, g, 5), M.hit_at(ranked, g, 10),
                     M.reciprocal_rank(ranked, g, 10), M.full_recall(ranked, g, 10)))
    n = len(rows)
    out = {name: sum(r[i] for r in rows) / n for i, name in enumerate(("hit@1", "hit@5", "hit@10", "mrr@10", "recall@10"))}
    out["p50_ms"] = 1000 * M.percentile(secs, 50)
    out["p95_ms"] = 1000 * M.percentile(secs, 95)
    return out


def coordinate_ascent(desk, base: Config, questions, vectors, golds, rounds: int = 2) -> dict:
    """Improve one second-stage weight at a time (MRR@10, then hit@5), starting from the defaults.

    The dense weight stays 1.0: it sets the scale. Features: ``HybridRetriever.FEATURES``.
    """
    values = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0)
    best_w = list(base.rerank_weights)
    key = lambda r: (r["mrr@10"], r["hit@5"])  # noqa: E731
    best = score(desk, base, questions, vectors, golds)
    tried = {}
    for _ in range(rounds):
        for i in range(1, len(best_w)):
            for v in values:
                w = tuple(best_w[:i] + [v] + best_w[i + 1 :])
                if w in tried:
                    continue
                tried[w] = score(desk, base.with_(rerank_weights=w), questions, vectors, golds)
                if key(tried[w]) > key(best):
                    best, best_w = tried[w], list(w)
    return {f"w={w}": r for w, r in tried.items()}


class _Recorder(HybridRetriever):
    """A retriever that keeps the second stage's candidates and feature rows of its last question."""

    last: tuple = ((), None)

    def features(self, question, vector, ranked, every=True):
        # every feature by default, weighted 0 or not: the fit may give any of them a weight
        self.last = super().features(question, vector, ranked, every=every)
        return self.last


def collect_rows(desk: Newsdesk, config: Config, questions, vectors, golds) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """Per question: the feature rows of its candidates, which candidates are gold sentences, and the candidates."""
    recorder = _Recorder(desk.store, desk.embedder, config)
    lib = desk.store.library()
    out = []
    for q, v, g in zip(questions, vectors, golds):
        # The candidates an answer is ranked from (Config.answer_candidates): the weights and the
        # reader serve answers and retrieval alike, and the shipped ones were fitted on these.
        recorder.retrieve(q["question"], k=10, vector=v, for_answer=True)
        kept, x = recorder.last
        gold = [any(M.matches(M.Span(c.article_id, s.start, s.end, s.text), span) for span in g)
                for c in kept for s in [lib.sentence(c.article_id, c.index)]]
        out.append((x, np.array(gold, dtype=bool), kept))
    return out


def rank_quality(rows, weights) -> tuple[float, float, float]:
    """hit@1, hit@5 and MRR@10 of the gold sentences when candidates are ranked by ``x @ weights``."""
    ranks = []
    for x, gold, *_ in rows:
        order = np.argsort(-(x @ np.asarray(weights)), kind="stable")
        found = np.nonzero(gold[order])[0]
        ranks.append(found[0] + 1 if len(found) else 10**6)
    ranks = np.array(ranks)
    return float(np.mean(ranks == 1)), float(np.mean(ranks <= 5)), float(np.mean(np.where(ranks <= 10, 1 / ranks, 0)))


def fit_weights(rows, start, rounds: int = 2) -> tuple[float, ...]:
    """Coordinate ascent on MRR@10 (then hit@1) over the collected rows; the dense weight stays 1.0."""
    values = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0)
    key = lambda w: (lambda r: (r[2], r[0]))(rank_quality(rows, w))  # noqa: E731
    best, best_key = list(start), key(start)
    for _ in range(rounds):
        for i in range(1, len(best)):
            for v in values:
                w = best[:i] + [v] + best[i + 1 :]
                if key(w) > best_key:
                    best, best_key = w, key(w)
    return tuple(best)


def fit(args) -> int:
    """Fit second-stage weights on the pooled questions; report 5-fold cross-validation first."""
    from sklearn.model_selection import KFold

    # The weights order the candidates before the reader reads the best of them, so the rows are
    # collected without it (it would only cost time here).
    base = Config(index=args.index, corpus=args.corpus, granularity=args.granularity, reader=False)
    desk = open_desk(base)
    questions = [q for path in args.questions for q in load_questions(path) if q["type"] != "unanswerable"]
    golds = [gold_spans(desk, q) for q in questions]
    rows = collect_rows(desk, base, questions, desk.embed([q["question"] for q in questions]), golds)
    start = list(base.rerank_weights)
    shipped, refit = [], []
    for train, test in KFold(5, shuffle=True, random_state=0).split(rows):
        held = [rows[i] for i in test]
        shipped.append((len(held), rank_quality(held, start)))
        refit.append((len(held), rank_quality(held, fit_weights([rows[i] for i in train], start))))
    mean = lambda parts: [sum(n * r[j] for n, r in parts) / len(rows) for j in range(3)]  # noqa: E731
    print(f"{len(rows)} answerable questions from {', '.join(map(str, args.questions))}; 5-fold cross-validation\n")
    print("| weights | hit@1 | hit@5 | MRR@10 |\n|---|---|---|---|")
    for name, parts in (("current defaults", shipped), ("fitted on the other four folds", refit)):
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in mean(parts)) + " |")
    weights = fit_weights(rows, start)
    print(f"\nfitted on all {len(rows)}: {weights} (in-sample " + ", ".join(f"{v:.3f}" for v in rank_quality(rows, weights)) + ")")
    return 0


def sweep_reader(args) -> int:
    """How many candidates the reader must read, and when it may be skipped, against ranking quality.

    The reader's scores for each question's best ``max(--candidates)`` first-stage candidates are
    computed once; each setting then re-ranks them as ``HybridRetriever._rescore`` does. "Skip at
    margin m" leaves the first-stage order alone when its best candidate leads the second by more
    than m (a clear winner the reader rarely overturns), which saves the reader's time there.
    The rows "the best n within the margin" read only those of the best n that score within m of
    the best (none when no other does): fewer passages, but fewer candidates the reader can lift.
    """
    from rag.reader import OnnxReader, passage_in

    base = Config(index=args.index, corpus=args.corpus, granularity=args.granularity, reader=False,
                  reader_model=args.reader_model)
    base = base.with_(reader_weight=args.reader_weight)
    desk = open_desk(base)
    questions = [q for path in args.questions for q in load_questions(path) if q["type"] != "unanswerable"]
    golds = [gold_spans(desk, q) for q in questions]
    rows = collect_rows(desk, base, questions, desk.embed([q["question"] for q in questions]), golds)
    lib = desk.store.library()
    reader, most = OnnxReader(base.reader_model), max(args.candidates)
    read = []
    for q, (x, gold, kept) in zip(questions, rows):
        first = x @ np.asarray(base.rerank_weights)
        order = np.argsort(-first, kind="stable")
        top = [kept[i] for i in order[:most]]
        read.append((first[order], gold[order], reader.score(q["question"], [
            passage_in(lib, c.article_id, c.index, reader.context) for c in top])))
    print(f"{len(rows)} answerable questions from {', '.join(map(str, args.questions))}; reader weight {base.reader_weight}\n")
    print("| reader reads | skip when the lead is over | questions skipped | passages read per question | hit@1 | hit@5 | MRR@10 |")
    print("|---|---|---|---|---|---|---|")
    for within in (False, True):
        for n in args.candidates:
            for m in (None, 0.6, 0.4, 0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05):
                if within and m is None:
                    continue
                ranks, skipped, passages = [], 0, 0
                for first, gold, p in read:
                    score = first.copy()
                    chosen = np.arange(len(score)) < min(n, len(p))
                    if within:
                        # only the candidates close to the best: a close one is where reading pays
                        chosen &= first[0] - first <= m
                    if m is not None and (chosen.sum() <= 1 if within else len(score) > 1 and score[0] - score[1] > m):
                        skipped += 1
                    else:
                        idx = np.nonzero(chosen)[0]
                        score[idx] += base.reader_weight * p[idx]
                        passages += int(chosen.sum())
                    found = np.nonzero(gold[np.argsort(-score, kind="stable")])[0]
                    ranks.append(found[0] + 1 if len(found) else 10**6)
                ranks = np.array(ranks)
                label = f"the best {n} within the margin" if within else str(n)
                print(f"| {label} | {'never' if m is None else m} | {skipped / len(read):.2f} | {passages / len(read):.1f} | "
                      f"{np.mean(ranks == 1):.3f} | {np.mean(ranks <= 5):.3f} | {np.mean(np.where(ranks <= 10, 1 / ranks, 0)):.3f} |")
    return 0


def one_hot(i: int) -> tuple[float, ...]:
    return tuple(float(j == i) for j in range(len(HybridRetriever.FEATURES)))


def sweep_abstention(args) -> int:
    """Abstention on unanswerable vs false abstention on answerable questions, per threshold."""
    from rag.answer import confidence

    config = Config(index=args.index, corpus=args.corpus, granularity=args.granularity)
    desk = open_desk(config)
    questions = [q for path in args.questions for q in load_questions(path)]
    best = []
    for q in questions:
        hits = desk.retrieve(q["question"], k=10)[: max(1, config.confident_hits)]  # as the answerer judges
        best.append((q["type"] == "unanswerable", max((confidence(q["question"], h) for h in hits), default=0.0)))
    print(f"granularity={args.granularity}, {len(questions)} questions from {', '.join(map(str, args.questions))}\n")
    print("| threshold | abstention (unanswerable) | false abstention (answerable) |")
    print("|---|---|---|")
    un = [c for u, c in best if u]
    an = [c for u, c in best if not u]
    for t in [x / 100 for x in range(30, 51)]:  # where answerable and unanswerable confidences meet
        print(f"| {t:.2f} | {sum(c < t for c in un) / max(len(un), 1):.3f} | {sum(c < t for c in an) / max(len(an), 1):.3f} |")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--questions", type=Path, nargs="+", required=True, help="one or more question files, pooled")
    p.add_argument("--granularity", default="sentence")
    p.add_argument("--grid", action="store_true", help="search second-stage weights")
    p.add_argument("--abstain", action="store_true", help="sweep the abstention threshold instead")
    p.add_argument("--fit", action="store_true", help="fit second-stage weights over features collected once, with 5-fold CV")
    p.add_argument("--reader", action="store_true", help="sweep how many candidates the reader reads and when it is skipped")
    p.add_argument("--candidates", type=int, nargs="+", default=[3, 5, 7, 10], help="with --reader: numbers of candidates to try")
    p.add_argument("--reader-model", type=Path, help="with --reader: a reader folder other than the shipped one")
    p.add_argument("--reader-weight", type=float, help="with --reader: a reader weight other than the configured one")
    args = p.parse_args()
    if args.abstain:
        return sweep_abstention(args)
    if args.fit:
        return fit(args)
    if args.reader:
        return sweep_reader(args)

    base = Config(index=args.index, corpus=args.corpus, granularity=args.granularity)
    desk = open_desk(base)
    questions = [q for path in args.questions for q in load_questions(path) if q["type"] != "unanswerable"]
    golds = [gold_spans(desk, q) for q in questions]
    vectors = desk.embed([q["question"] for q in questions])
    desk.retrieve(questions[0]["question"])  # load indexes before timing

    settings = {
        "dense only": base.with_(rerank=True, rerank_weights=one_hot(0)),
        "bm25 only": base.with_(rerank=True, rerank_weights=one_hot(1)),
        "RRF fusion (no second stage)": base.with_(rerank=False),
        "second stage (default weights)": base,
        "second stage, no article expansion": base.with_(expand_articles=0),
        "second stage, expand 5 articles": base.with_(expand_articles=5),
    }
    results = {name: score(desk, cfg, questions, vectors, golds) for name, cfg in settings.items()}
    if args.grid:
        results.update(coordinate_ascent(desk, base, questions, vectors, golds))
    ranked = sorted(results.items(), key=lambda kv: (-kv[1]["mrr@10"], -kv[1]["hit@5"]))
    shown = [kv for kv in ranked if not kv[0].startswith("w=")] + [kv for kv in ranked if kv[0].startswith("w=")][:8]
    print(f"granularity={args.granularity}, {len(questions)} answerable questions from {', '.join(map(str, args.questions))}")
    print(f"weights in the order of {HybridRetriever.FEATURES}\n")
    print("| setting | hit@1 | hit@5 | hit@10 | MRR@10 | full recall@10 | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in shown:
        print(f"| {name} | {r['hit@1']:.3f} | {r['hit@5']:.3f} | {r['hit@10']:.3f} | {r['mrr@10']:.3f} | "
              f"{r['recall@10']:.3f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
