"""``python -m rag ingest|retrieve|ask|eval|bench``: the engine from the command line.

Environment variables (``NEWSDESK_*``, see ``Config.from_env``) and flags are read here only.

Exit codes: 0 done; 1 the index could not be written (the message names the folder and the
cause: disk full, read-only, ...); 2 bad input or the LLM is unavailable; 75 another ingest is
running on the same index (try again later).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rag.config import Config

EXIT_INDEX_FAILED = 1
EXIT_BUSY = 75  # EX_TEMPFAIL: the same command will work once the other ingest ends


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that opens an index."""
    p.add_argument("--corpus", type=Path, help="folder of articles (default: corpus/)")
    p.add_argument("--index", type=Path, help="folder of the persistent Chroma index (default: .newsdesk/index)")
    p.add_argument("--chroma-url", help="use a Chroma server instead, e.g. http://127.0.0.1:8000")
    p.add_argument("--granularity", choices=["sentence", "window", "chunk"], help="indexing unit")
    p.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], help="embedding backend (default onnx: the same vectors as torch, faster on a CPU)")
    p.add_argument("--no-rerank", dest="rerank", action="store_false", default=None, help="skip second-stage scoring")
    p.add_argument("--no-reader", dest="reader", action="store_false", default=None,
                   help="second stage without the reader model (about 3x faster, finds the exact sentence less often)")


def add_llm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", choices=["none", "llamacpp", "openai"], help="answerer (default: none = extractive)")
    p.add_argument("--llm-model", help="GGUF path (llamacpp) or model name (openai)")
    p.add_argument("--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1")
    p.add_argument("--llm-api-key", help="API key for the OpenAI-compatible server")
    p.add_argument("--llm-sentences", type=int, help="how many of the best sentences the model reads (default 10)")


def config_from(args: argparse.Namespace, environ=None) -> Config:
    """Environment first, then flags that were given."""
    fields = ("corpus", "index", "chroma_url", "granularity", "backend", "rerank", "reader", "llm", "llm_model", "llm_url", "llm_api_key", "llm_sentences")
    return Config.from_env(environ).with_(**{f: getattr(args, f, None) for f in fields})


def _filters(args) -> dict:
    f = {}
    if getattr(args, "source", None):
        f["sources"] = args.source
    if getattr(args, "date_from", None):
        f["date_from"] = args.date_from
    if getattr(args, "date_to", None):
        f["date_to"] = args.date_to
    if getattr(args, "article", None):
        f["article_ids"] = args.article
    return f


def _filter_flags(p):
    p.add_argument("--source", action="append", help="only this source (repeatable)")
    p.add_argument("--date-from", help="only articles published on or after this ISO date")
    p.add_argument("--date-to", help="only articles published on or before this ISO date")
    p.add_argument("--article", action="append", help="only this article id (repeatable)")


def cmd_ingest(args) -> int:
    from rag.pipeline import Newsdesk

    desk = Newsdesk(config_from(args))
    report = desk.ingest(progress=not args.json and sys.stderr.isatty() or args.progress)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(
            f"{report.articles} articles, {report.sentences} sentences, {report.chunks} chunks indexed "
            f"({report.added} added, {report.updated} updated, {report.removed} removed) in {report.seconds:.1f}s"
        )
        for p in report.skipped:
            print(f"skipped {p.path}: {p.reason}")
        for p in report.warnings:
            print(f"warning {p.path}: {p.reason}")
    return 0


def ensure_index(desk) -> None:
    """Ingest the corpus first when the index holds nothing for this config (a new folder, or
    one built with another embedding model, whose collections are named apart)."""
    if desk.store.articles.count() == 0:
        print("index is empty: ingesting the corpus first", file=sys.stderr)
        desk.ingest(progress=sys.stderr.isatty())


def cmd_retrieve(args) -> int:
    from rag.pipeline import Newsdesk

    desk = Newsdesk(config_from(args))
    ensure_index(desk)
    t0 = time.perf_counter()
    hits = desk.retrieve(args.question, k=args.k, filters=_filters(args))
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"question": args.question, "hits": [h.to_dict() for h in hits], "seconds": round(seconds, 4)}, ensure_ascii=False))
        return 0
    for n, h in enumerate(hits, 1):
        print(f"{n:>2}. {h.score:.3f}  {h.article_id} [{h.start}:{h.end}]  {h.title}")
        print(f"    {h.text}")
        if h.also_in:
            print(f"    also in: {', '.join(h.also_in)}")
    return 0


def render(answer) -> str:
    """An answer as plain text with numbered citations underneath."""
    lines = [answer.text]
    if answer.note:
        lines.append(f"({answer.note})")
    if answer.standalone_question != answer.question:
        lines.insert(0, f"(understood as: {answer.standalone_question})")
    for c in answer.citations:
        where = ", ".join(x for x in (c.source, c.published) if x)
        lines.append(f"[{c.n}] {c.title or c.article_id} ({c.article_id}{', ' + where if where else ''}) [{c.start}:{c.end}]")
        lines.append(f"    “{c.sentence}”")
    if answer.related:
        lines.append("Related (not an answer):" if answer.abstained else "Related, not cited:")
        for h in answer.related:
            lines.append(f"  - {h.article_id}: {h.text}")
    return "\n".join(lines)


def cmd_ask(args) -> int:
    from rag.pipeline import BadQuestion, Newsdesk

    desk = Newsdesk(config_from(args))
    ensure_index(desk)
    try:
        answer = desk.ask(args.question, filters=_filters(args))
    except BadQuestion as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(answer.to_dict(), ensure_ascii=False) if args.json else render(answer))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("eval", "bench"):
        # The evaluation and benchmark runners own their flags.
        if argv[0] == "eval":
            from rag.evaluation import main as run
        else:
            from rag.bench import main as run
        return run(argv[1:])

    parser = argparse.ArgumentParser(prog="python -m rag", description="Newsdesk: question answering over news, with exact citations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index the corpus folder (incremental)")
    add_config_flags(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("retrieve", help="ranked source sentences for a question")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    add_config_flags(p)
    _filter_flags(p)
    p.set_defaults(func=cmd_retrieve)

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("--json", action="store_true")
    add_config_flags(p)
    add_llm_flags(p)
    _filter_flags(p)
    p.set_defaults(func=cmd_ask)

    sub.add_parser("eval", help="score on a question set (see python -m rag eval --help)")
    sub.add_parser("bench", help="speed, memory and scale benchmarks (see python -m rag bench --help)")

    args = parser.parse_args(argv)
    return _run(args)


def _run(args) -> int:
    """Run a command; failures a user can act on are one ``error:`` line and an exit code, not a traceback."""
    from rag.ingest import IngestBusy, IngestFailed

    from rag.entities import TaggerUnavailable

    expected: dict[type, int] = {IngestFailed: EXIT_INDEX_FAILED, IngestBusy: EXIT_BUSY, TaggerUnavailable: 2}
    if getattr(args, "llm", None) not in (None, "none"):
        from rag.llm import LLMUnavailable

        expected[LLMUnavailable] = 2
    try:
        return args.func(args)
    except tuple(expected) as e:
        print(f"error: {e}", file=sys.stderr)
        return next(code for kind, code in expected.items() if isinstance(e, kind))
