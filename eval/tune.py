"""Compare retrieval settings on a question set in one process: granularity, fusion, second-stage weights.

    .venv/bin/python eval/tune.py --index /work/idx/bbc --corpus ../shared/datasets/bbc-news \
        --questions eval/questions/bbc-dev.jsonl --granularity sentence --grid

Prints a markdown table (hit@1/5/10, MRR@10, full evidence recall@10, retrieval p50/p95) per
setting. Question vectors are computed once, so each setting costs only the search itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import metrics as M  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.evaluation import gold_spans, load_questions  # noqa: E402
from rag.pipeline import Newsdesk  # noqa: E402
from rag.retrieval import HybridRetriever  # noqa: E402


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


def one_hot(i: int) -> tuple[float, ...]:
    return tuple(float(j == i) for j in range(len(HybridRetriever.FEATURES)))


def sweep_abstention(args) -> int:
    """Abstention on unanswerable vs false abstention on answerable questions, per threshold."""
    from rag.answer import confidence

    desk = Newsdesk(Config(index=args.index, corpus=args.corpus, granularity=args.granularity))
    questions = [q for path in args.questions for q in load_questions(path)]
    best = []
    for q in questions:
        hits = desk.retrieve(q["question"], k=10)
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
    args = p.parse_args()
    if args.abstain:
        return sweep_abstention(args)

    base = Config(index=args.index, corpus=args.corpus, granularity=args.granularity)
    desk = Newsdesk(base)
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
