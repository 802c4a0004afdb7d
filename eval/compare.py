"""Compare two sets of eval runs question by question: what changed, and is it more than noise?

    .venv/bin/python eval/compare.py --before eval-out/s8-bbc-test eval-out/s8-bbc-test2 \\
        --after eval-out/s9-bbc-test eval-out/s9-bbc-test2

Each folder is the output of ``python -m rag eval --out``; the questions of all ``--before``
folders are pooled, and so are those of ``--after``, and they must be the same questions (by id).
For each headline score the table gives the pooled value before and after (95% interval, as in
the eval report), how many questions went up, down or stayed, and the two-sided sign-test
p-value of the up/down split (``rag.metrics.sign_test``). A move of a few questions on a set of
a few hundred is usually noise: the p-value says how usual.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.evaluation import metric_cell  # noqa: E402
from rag.metrics import aggregate, percentile, sign_test  # noqa: E402

# (label, per-question score, which questions, key of the pooled value)
ROWS = (
    ("sentence hit@1", "hit@1", "answerable", "hit@1"),
    ("sentence hit@5", "hit@5", "answerable", "hit@5"),
    ("MRR@10", "rr@10", "answerable", "mrr@10"),
    ("answer correct, single", "correct", "single", "correct"),
    ("abstained, unanswerable", "abstained", "unanswerable", "abstention_accuracy"),
    ("abstained, answerable", "abstained", "answerable", "false_abstention"),
)


def load_runs(folders: list[Path]) -> dict[str, dict]:
    """Every question of these eval folders by id: ``{"type", "scores", "timings"}``."""
    out = {}
    for folder in folders:
        path = Path(folder) / "predictions.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path} not found: pass folders written by `python -m rag eval --out`")
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["id"] in out:
                raise SystemExit(f"question {row['id']} appears twice in {', '.join(map(str, folders))}")
            out[row["id"]] = row
    return out


def _in(row: dict, group: str) -> bool:
    """Is this question one of ``group``: "answerable", "unanswerable" or a question type?"""
    if group in ("answerable", "unanswerable"):
        return row["scores"]["answerable"] == (group == "answerable")
    return row["type"] == group


def compare(before: dict[str, dict], after: dict[str, dict]) -> str:
    """The comparison as a markdown table, then retrieval latency before and after."""
    if before.keys() != after.keys():
        only = sorted(before.keys() ^ after.keys())
        raise SystemExit(f"not the same questions: {len(only)} in one run only, e.g. {only[:3]}")
    ids = sorted(before)
    lines = [f"{len(ids)} questions\n",
             "| score | before | after | up | down | same | sign test p |", "|---|---|---|---|---|---|---|"]
    for label, score, group, key in ROWS:
        chosen = [i for i in ids if _in(before[i], group)]
        if not chosen:
            continue
        t = sign_test([float(before[i]["scores"][score]) for i in chosen], [float(after[i]["scores"][score]) for i in chosen])
        pooled = [metric_cell(key, aggregate([run[i]["scores"] for i in chosen])) for run in (before, after)]
        lines.append(f"| {label} ({len(chosen)}) | {pooled[0]} | {pooled[1]} | {t['up']} | {t['down']} | {t['same']} | {t['p']:.3f} |")
    lines.append("")
    for name, run in (("before", before), ("after", after)):
        secs = [1000 * run[i]["timings"]["retrieve_seconds"] for i in ids if run[i].get("timings", {}).get("retrieve_seconds") is not None]
        if secs:
            lines.append(f"retrieval {name}: p50 {percentile(secs, 50):.1f} ms, p95 {percentile(secs, 95):.1f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, nargs="+", required=True, help="eval output folders of the first run")
    p.add_argument("--after", type=Path, nargs="+", required=True, help="eval output folders of the second run, same questions")
    args = p.parse_args(argv)
    print(compare(load_runs(args.before), load_runs(args.after)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
