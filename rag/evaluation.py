"""``python -m rag eval``: ask every question of a question set, score the answers, write a report.

Question files are JSON Lines, one question a line::

    {"id": "q1", "type": "single" | "multi" | "unanswerable", "question": "...", "answer": "...",
     "aliases": ["..."], "evidence": [{"doc": "<article id = path relative to the corpus>", "sentence": "..."}]}

Outputs (in ``--out``): ``predictions.jsonl`` (per question: the ``ask --json`` answer, the ranked
retrieved sentences with offsets, timings and scores), ``metrics.json`` (per question type and
overall; definitions in rag/metrics.py) and ``report.md`` with ``metrics.png``.

For tuning in one process, build the engine once and call ``run`` per setting::

    desk = Newsdesk(config)
    for rerank in (True, False):
        d = Newsdesk(config.with_(rerank=rerank), embedder=desk.embedder)  # reuse the loaded model
        predictions, metrics = run(d, load_questions(path), progress=False)
        print(rerank, metrics["newsdesk"]["overall"]["hit@5"])
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

from rag import metrics as M
from rag.answer import ExtractiveAnswerer
from rag.config import Config

SYSTEM = "newsdesk"
BASELINE = "llama-index"
DEFAULT_QUESTIONS = Path("eval/questions/seeds.jsonl")
MAIN_METRICS = ("hit@1", "hit@5", "hit@10", "mrr@10", "full_recall@10", "correct", "f1",
                "citation_precision", "citation_recall", "abstention_accuracy")
LABELS = {
    "n": "questions", "hit@1": "sentence hit@1", "hit@5": "sentence hit@5", "hit@10": "sentence hit@10",
    "mrr@10": "MRR@10", "full_recall@10": "full evidence recall@10", "article_hit@1": "article hit@1",
    "article_hit@5": "article hit@5", "correct": "answer correct",
    "f1": "token F1", "short_answer": "short answer right (of correct single answers)",
    "citation_precision": "citation precision", "citation_recall": "citation recall",
    "cited_chars": "mean characters per citation",
    "abstention_accuracy": "abstention accuracy", "false_abstention": "false-abstention rate",
    "support": "mean support",
    "by_llm": "answers written by the language model (the rest quote the articles: its answer was not backed)",
    "latency_p50": "answer latency p50 (ms)", "latency_p95": "answer latency p95 (ms)",
    "retrieval_p50": "retrieval latency p50 (ms)", "retrieval_p95": "retrieval latency p95 (ms)",
}


class BadQuestionFile(ValueError):
    """The question file cannot be used as given; the message names the line and the problem."""


def load_questions(path: Path) -> list[dict]:
    """Read and check a question file; every problem is reported with its line number."""
    path = Path(path)
    if not path.is_file():
        raise BadQuestionFile(f"no question file at {path}")
    questions, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadQuestionFile(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(q, dict):
            raise BadQuestionFile(f"{path}:{n}: expected a JSON object")
        for key in ("id", "type", "question"):
            if not q.get(key):
                raise BadQuestionFile(f"{path}:{n}: missing {key!r}")
        if q["type"] not in M.TYPES:
            raise BadQuestionFile(f"{path}:{n}: type must be one of {', '.join(M.TYPES)}, not {q['type']!r}")
        if q["id"] in seen:
            raise BadQuestionFile(f"{path}:{n}: duplicate id {q['id']!r}")
        seen.add(q["id"])
        evidence = q.get("evidence") or []
        if q["type"] != "unanswerable":
            if not q.get("answer") or not evidence:
                raise BadQuestionFile(f"{path}:{n}: an answerable question needs 'answer' and 'evidence'")
            if any(not isinstance(e, dict) or not e.get("doc") or not e.get("sentence") for e in evidence):
                raise BadQuestionFile(f"{path}:{n}: each evidence item needs 'doc' and 'sentence'")
        history = q.get("history") or []
        if not isinstance(history, list) or any(
                not isinstance(t, list) or len(t) != 2 or not all(isinstance(x, str) for x in t) for t in history):
            raise BadQuestionFile(f"{path}:{n}: 'history' must be a list of [question, answer] pairs")
        q["history"] = [tuple(t) for t in history]
        q.setdefault("aliases", [])
        q["evidence"] = evidence
        questions.append(q)
    if not questions:
        raise BadQuestionFile(f"{path}: no questions")
    return questions


def gold_spans(desk, question: dict) -> list[M.Span]:
    """The question's evidence sentences located in their indexed articles (offsets None if not found)."""
    out = []
    for e in question["evidence"]:
        try:
            text = desk.article(e["doc"])["text"]
        except KeyError:
            text = ""
        where = M.locate(text, e["sentence"]) if text else None
        out.append(M.Span(e["doc"], *(where or (None, None)), e["sentence"]))
    return out


def _hit_span(h) -> M.Span:
    return M.Span(h.article_id, h.start, h.end, h.text)


def _citation_span(c) -> M.Span:
    return M.Span(c.article_id, c.start, c.end, c.sentence)


def _chunk_span(c) -> M.Span:
    return M.Span(c.article_id, c.start, c.end, c.text)


def _config_dict(config: Config) -> dict:
    d = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    d["llm_api_key"] = "***" if d.get("llm_api_key") else None  # never written to a report
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def run(desk, questions: list[dict], *, baseline=None, k: int = 10, progress: bool = False) -> tuple[list[dict], dict]:
    """Retrieve and ask every question through ``desk`` (and ``baseline``, already built); score them.

    Returns ``(predictions, metrics)``: one record per question, and the metrics per system
    (``metrics["newsdesk"]``, ``metrics["llama-index"]``) per question type and ``overall``.
    Retrieval scores and times are ``retrieve()``'s; answer scores and times are ``ask()``'s,
    which ranks with more of the reader (``Config.answer_reader_skip_margin``).
    """
    started = datetime.now().isoformat(timespec="seconds")
    load_start = [round(x, 2) for x in os.getloadavg()]
    if questions:
        desk.retrieve(questions[0]["question"], k=k)  # load the model and indexes before timing
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(questions), unit="question", desc="eval", dynamic_ncols=True, file=sys.stderr)
    predictions, scores, seconds, rsecs = [], [], [], []
    b_scores, b_seconds = [], []
    unlocated = []
    for q in questions:
        golds = gold_spans(desk, q)
        unlocated += [f"{q['id']}: {g.article_id}" for g in golds if g.start is None]
        t0 = time.perf_counter()
        # A follow-up (a question with "history") is retrieved as the engine rewrites it, as ask() does.
        history = q.get("history") or []
        hits = desk.retrieve(desk.rewrite(q["question"], history) if history else q["question"], k=k)
        retrieve_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        answer = desk.ask(q["question"], history=history, k=k)
        ask_seconds = time.perf_counter() - t0
        s = M.score_question(
            q["type"], golds, [_hit_span(h) for h in hits], answer=q.get("answer", ""), aliases=q["aliases"],
            answer_text=" ".join(x.text for x in answer.sentences), short_answer=answer.short_answer,
            abstained=answer.abstained, cited=[_citation_span(c) for c in answer.citations], support=answer.support,
            by_llm=None if isinstance(desk.answerer, ExtractiveAnswerer) else answer.answered_by == "llm",
        )
        scores.append(s)
        seconds.append(ask_seconds)
        rsecs.append(retrieve_seconds)
        record = {
            "id": q["id"], "type": q["type"], "question": q["question"],
            "gold": {"answer": q.get("answer", ""), "aliases": q["aliases"],
                     "evidence": [{"doc": g.article_id, "sentence": g.text, "start": g.start, "end": g.end} for g in golds]},
            "answer": answer.to_dict(),
            "retrieved": [
                {"rank": r, "article_id": h.article_id, "sentence_index": h.sentence_index, "start": h.start, "end": h.end,
                 "sentence": h.text, "score": round(h.score, 4), "also_in": list(h.also_in)}
                for r, h in enumerate(hits, 1)
            ],
            "timings": {"ask_seconds": round(ask_seconds, 4), "retrieve_seconds": round(retrieve_seconds, 4)},
            "scores": s,
        }
        if baseline is not None:
            t0 = time.perf_counter()
            chunks = baseline.retrieve(q["question"])
            b_secs = time.perf_counter() - t0
            top = chunks[:1]
            bs = M.score_question(
                q["type"], golds, [_chunk_span(c) for c in chunks], answer=q.get("answer", ""), aliases=q["aliases"],
                answer_text=top[0].text if top else "", short_answer="", abstained=not top,
                cited=[_chunk_span(c) for c in top], support=None, contain=True,
            )
            b_scores.append(bs)
            b_seconds.append(b_secs)
            record["baseline"] = {"system": baseline.name, "retrieved": [c.to_dict() for c in chunks],
                                  "seconds": round(b_secs, 4), "scores": bs}
        predictions.append(record)
        if bar:
            bar.update(1)
    if bar:
        bar.close()

    result = {
        "run": {
            "date": started,
            "questions": len(questions),
            "config": _config_dict(desk.config),
            "index": desk.stats() | {"sources": None},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_average_start": load_start, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
            "gold_not_located": unlocated,
        },
        SYSTEM: M.by_type(scores, seconds, rsecs),
    }
    if baseline is not None:
        result["run"]["baseline"] = {"system": baseline.name, "chunks": baseline.chunks,
                                     "mean_chunk_chars": round(baseline.mean_chunk_chars),
                                     "build_seconds": round(baseline.build_seconds, 2), "top_k": baseline.top_k,
                                     "reused_cached_index": baseline.reused}
        # The baseline's latency is its retrieval, which is all it does.
        result[BASELINE] = M.by_type(b_scores, b_seconds, b_seconds)
    return predictions, result


# --- report ---------------------------------------------------------------------------------


def _fmt(key: str, v) -> str:
    if v is None:
        return "–"
    if key.startswith(("latency", "retrieval")):
        return f"{v * 1000:.0f}"
    if key == "cited_chars":
        return f"{v:.0f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _systems(metrics: dict) -> list[str]:
    return [s for s in (SYSTEM, BASELINE) if s in metrics]


def metric_cell(key: str, group: dict) -> str:
    """A metric's value, with its 95% interval where there is one: ``0.611 (0.45–0.75)``."""
    text = _fmt(key, group.get(key))
    ci = (group.get("ci95") or {}).get(key)
    return f"{text} ({ci[0]:.2f}–{ci[1]:.2f})" if ci and group.get(key) is not None else text


def overall_table(metrics: dict, group: str = "overall") -> str:
    """Metric rows, one column per system, for one question type (or overall)."""
    systems = _systems(metrics)
    rows = []
    for key in LABELS:
        vals = [metrics[s].get(group, {}).get(key) for s in systems]
        if all(v is None for v in vals):
            continue
        rows.append([LABELS[key], *(metric_cell(key, metrics[s].get(group, {})) for s in systems)])
    return _table(["metric", *systems], rows)


def type_table(metrics: dict, system: str) -> str:
    """Metric rows, one column per question type, for one system."""
    groups = [g for g in (*M.TYPES, "overall") if g in metrics[system]]
    rows = [[LABELS[k], *(metric_cell(k, metrics[system][g]) for g in groups)] for k in LABELS]
    return _table(["metric", *groups], rows)


def chart(metrics: dict, path: Path) -> Path:
    """A grouped bar chart of the main metrics (overall), one bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = _systems(metrics)
    keys = [k for k in MAIN_METRICS if any(metrics[s]["overall"].get(k) is not None for s in systems)]
    fig, ax = plt.subplots(figsize=(max(6, 1.0 * len(keys) + 2), 4.2))
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        vals = [metrics[s]["overall"].get(k) or 0.0 for k in keys]
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(keys))]
        bars = ax.bar(xs, vals, width, label=s)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(keys)), [LABELS[k].replace("sentence ", "").replace("full evidence ", "full ")
                                     for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score (0–1)")
    ax.set_title(f"Overall, {metrics['run']['questions']} questions")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def failures(predictions: list[dict], limit: int = 10) -> list[dict]:
    """The worst misses of the engine: wrong answers, gold not retrieved first, then answered unanswerables."""
    bad = [p for p in predictions if not p["scores"]["correct"]]

    def badness(p):
        s = p["scores"]
        if not s["answerable"]:
            return (1, 0.0, 0.0)
        return (0, s["rr@10"], s["f1"] or 0.0)

    return sorted(bad, key=badness)[:limit]


def _quote(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def report(predictions: list[dict], metrics: dict, title: str, command: str, chart_name: str = "metrics.png") -> str:
    """The markdown report: setup, tables, chart, worst failures."""
    run_info = metrics["run"]
    cfg = run_info["config"]
    lines = [
        f"# Evaluation: {title}",
        "",
        f"- date: {run_info['date']}; machine: {run_info['machine']['cpus']} CPUs ({run_info['machine']['platform']}); "
        f"load average at start {run_info['machine'].get('load_average_start')}, at end {run_info['machine'].get('load_average_end')}",
        f"- command: `{command}`",
        f"- corpus: `{cfg['corpus']}` ({run_info['index'].get('articles')} articles, {run_info['index'].get('sentences')} sentences); "
        f"index `{cfg['index']}`",
        f"- engine: granularity={cfg['granularity']}, rerank={cfg['rerank']}, backend={cfg['backend']}, llm={cfg['llm']}, "
        f"abstain_threshold={cfg['abstain_threshold']}",
    ]
    if "baseline" in run_info:
        b = run_info["baseline"]
        lines.append(f"- baseline: plain llama-index (VectorStoreIndex, default chunking: {b['chunks']} chunks of "
                     f"{b.get('mean_chunk_chars', '?')} characters on average, same embedding model, top-{b['top_k']} "
                     f"retrieval, no LLM; answer and citation = the top chunk); "
                     f"{'loaded from cache' if b.get('reused_cached_index') else 'indexed'} in {b['build_seconds']} s. "
                     "A baseline hit is a chunk that contains (overlaps half of) a gold sentence, so with chunks this "
                     "long its sentence hit@k is close to its article hit@k; compare citation length too.")
    if run_info["gold_not_located"]:
        lines.append(f"- gold sentences not found in their article (matched by text only): {', '.join(run_info['gold_not_located'])}")
    lines += ["", "Metric definitions: rag/metrics.py. Latencies in milliseconds. In brackets, 95% intervals "
              "(Wilson for rates, a bootstrap over questions for MRR and citation precision): with a few dozen "
              "questions a difference inside them may be chance.", "",
              "## Overall" + (" — side by side" if BASELINE in metrics else ""), "", overall_table(metrics), "",
              f"![main metrics]({chart_name})", ""]
    for system in _systems(metrics):
        lines += [f"## {system} by question type", "", type_table(metrics, system), ""]
    worst = failures(predictions)
    lines += ["## Worst failures (newsdesk)", ""]
    if not worst:
        lines.append("None: every question was answered correctly.")
    for p in worst:
        s, a = p["scores"], p["answer"]
        lines.append(f"### {p['id']} ({p['type']})")
        lines.append(f"- question: {p['question']}")
        if s["answerable"]:
            lines.append(f"- gold answer: {p['gold']['answer']}" + (f" (aliases: {', '.join(p['gold']['aliases'])})" if p["gold"]["aliases"] else ""))
            for g in p["gold"]["evidence"]:
                lines.append(f"- gold sentence ({g['doc']}): “{_quote(g['sentence'])}”")
            lines.append(f"- gold first retrieved at rank: {s['rank'] or 'not in top 10'}")
        if a["abstained"]:
            lines.append("- answered: abstained" + (f"; top retrieved: “{_quote(p['retrieved'][0]['sentence'])}” ({p['retrieved'][0]['article_id']})" if p["retrieved"] else ""))
        else:
            for c in a["citations"]:
                lines.append(f"- cited instead [{c['n']}] ({c['article_id']} {c['start']}:{c['end']}): “{_quote(c['sentence'])}”")
        lines.append("")
    return "\n".join(lines)


def write(out: Path, predictions: list[dict], metrics: dict, title: str, command: str) -> dict[str, Path]:
    """Write predictions.jsonl, metrics.json, metrics.png and report.md into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": out / "predictions.jsonl", "metrics": out / "metrics.json",
             "chart": out / "metrics.png", "report": out / "report.md"}
    with paths["predictions"].open("w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    metrics = metrics | {"run": metrics["run"] | {"command": command, "title": title}}
    paths["metrics"].write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    chart(metrics, paths["chart"])
    paths["report"].write_text(report(predictions, metrics, title, command, paths["chart"].name) + "\n", encoding="utf-8")
    return paths


# --- command line ---------------------------------------------------------------------------


def default_index(corpus: Path) -> Path:
    """A private index per corpus folder, so an eval never rewrites the index a user works with."""
    resolved = str(Path(corpus).resolve())
    return Path(".newsdesk") / "eval" / f"{Path(resolved).name or 'corpus'}-{hashlib.sha1(resolved.encode()).hexdigest()[:8]}"


def parser() -> argparse.ArgumentParser:
    from rag.cli import add_config_flags, add_llm_flags

    p = argparse.ArgumentParser(
        prog="python -m rag eval",
        description="Score the engine on a question set and write predictions, metrics and a report.",
        epilog="Without --index (or NEWSDESK_INDEX) the index is a private one per corpus folder under "
               ".newsdesk/eval/, so an evaluation never rewrites the index you work with.",
    )
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS,
                   help=f"question file, JSON Lines (default: {DEFAULT_QUESTIONS}, over corpus/)")
    add_config_flags(p)
    add_llm_flags(p)
    p.add_argument("--out", type=Path, help="output folder (default: eval-out/<question file name>)")
    p.add_argument("--baseline", choices=["llamaindex"], help="also run a plain llama-index pipeline, side by side")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout instead of a summary")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from rag.cli import config_from
    from rag.pipeline import Newsdesk

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        questions = load_questions(args.questions)
    except BadQuestionFile as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        questions = questions[: args.limit]
    config = config_from(args)
    if args.index is None and not os.environ.get("NEWSDESK_INDEX") and not config.chroma_url:
        config = config.with_(index=default_index(config.corpus))
    if not Path(config.corpus).is_dir():
        print(f"error: no corpus folder at {config.corpus}", file=sys.stderr)
        return 2
    out = args.out or Path("eval-out") / args.questions.stem
    command = shlex.join(["python", "-m", "rag", "eval", *argv])

    desk = Newsdesk(config)
    report_ = desk.ingest(progress=args.progress)  # embeds nothing when the index is current
    if report_.embedded:
        print(f"indexed {report_.embedded} chunks of {report_.articles} articles into {config.index}", file=sys.stderr)
    baseline = None
    if args.baseline:
        from rag.baseline import LlamaIndexBaseline

        baseline = LlamaIndexBaseline(config.model_path)
        print("building the llama-index baseline ...", file=sys.stderr)
        # Cached beside the index: rebuilding it for every run costs minutes on a 2-core machine.
        baseline.build(list(desk.store.library().articles.values()), progress=args.progress,
                       cache_dir=Path(desk.store._local_dir()) / "baselines")
    predictions, metrics = run(desk, questions, baseline=baseline, progress=args.progress)
    paths = write(out, predictions, metrics, title=str(args.questions), command=command)
    if args.json:
        print(paths["metrics"].read_text(encoding="utf-8"), end="")
        return 0
    print(overall_table(metrics))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0
