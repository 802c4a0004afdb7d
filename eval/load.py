"""Load test: N simulated users ask the running app questions through gradio_client for a bounded time.

    .venv/bin/python eval/load.py --users 20 --duration 120 --out eval/results/load-20users.json
    .venv/bin/python eval/load.py --url http://127.0.0.1:7860/ --pid 12345 --users 5 --duration 30

Without ``--url`` the script starts the app itself (``python app.py`` on a free loopback port, over
``--corpus``, default the shipped ``corpus/``, and ``--index``, default a fresh temporary folder),
as the app tests do, and stops it afterwards.

Each user is a thread with its own ``gradio_client.Client``. It walks the request mix from its own
starting point until the deadline (or ``--per-user`` steps): questions from ``--questions``; after
some of them a follow-up that sends the previous answer as history, the same question restricted to
one source, or a /retrieve call; now and then a deliberately bad request (empty question, k=0,
unknown filter, unknown article) that must be turned away with its clear message. Every answer is
checked: each citation's offsets must slice the cited article (fetched through /article, so those
calls are part of the load) and each marker must be in the answer text, or the answer abstains.

Counts: requests, unexpected errors (failures, timeouts, malformed answers, a bad request that was
accepted), expected rejections; latency p50/p95/p99/max per request kind, per endpoint and overall
(successful requests); throughput; and the app process's resident memory, sampled through the run
(needs the app's pid: known when the script starts the app, else ``--pid``). Prints a markdown
report; ``--out x.json`` also writes it as JSON and ``x.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # rag/ and tests/app_server.py live at the top of the repository

from rag.bench import load_question_texts, mib  # noqa: E402
from rag.metrics import percentile  # noqa: E402

DEFAULT_CORPUS = ROOT / "corpus"
DEFAULT_QUESTIONS = ROOT / "eval" / "questions" / "seeds.jsonl"
FOLLOW_UPS = ("When did that happen?", "Who said so?", "Why was that?", "What else do the articles say about it?")
# Bad requests a real client sends by mistake: each must be refused with this message, and nothing else.
BAD_REQUESTS = (
    (dict(question="", api_name="/ask"), "empty"),
    (dict(question="Shanghai", k=0, api_name="/retrieve"), "k must be"),
    (dict(question="Why did the lab close?", filters={"publisher": "x"}, api_name="/ask"), "unknown filter"),
    (dict(article_id="no-such-article.txt", api_name="/article"), "No article"),
)
ANSWER_KEYS = ("question", "standalone_question", "answer", "abstained", "citations")


# --- the request mix ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request of the mix: its kind, the question, and for a bad request the call and the error it must get."""

    kind: str  # ask, follow_up, ask_filtered, retrieve, bad
    question: str = ""
    call: dict = field(default_factory=dict)  # bad requests: the exact predict() keyword arguments
    expect: str = ""  # bad requests: a pattern the error message must match


def load_questions(path: Path) -> list[str]:
    """Question texts from a question set (.jsonl, as in eval/questions) or a text file, one a line."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return load_question_texts(path)
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def build_mix(questions: list[str]) -> list[Step]:
    """The steps users walk through: every question, with follow-ups, filtered asks, retrievals and bad requests mixed in."""
    mix: list[Step] = []
    for i, q in enumerate(questions):
        mix.append(Step("ask", q))
        extra = ("follow_up", "ask_filtered", "retrieve")[i % 3]
        mix.append(Step(extra, FOLLOW_UPS[i // 3 % len(FOLLOW_UPS)] if extra == "follow_up" else q))
        if i % 5 == 4:
            call, expect = BAD_REQUESTS[i // 5 % len(BAD_REQUESTS)]
            mix.append(Step("bad", call=call, expect=expect))
    return mix


# --- checking what comes back ----------------------------------------------------------------


def answer_problems(answer, article_text: Callable[[str], str], sources: list[str] | None = None) -> list[str]:
    """What is wrong with an /ask answer: missing fields, unmarked citations, offsets that do not slice the article."""
    if not isinstance(answer, dict):
        return [f"not a JSON object: {type(answer).__name__}"]
    missing = [k for k in ANSWER_KEYS if k not in answer]
    if missing:
        return [f"missing {', '.join(missing)}"]
    citations = answer["citations"]
    if answer["abstained"]:
        return [] if citations == [] else ["abstained but cites sources"]
    if not citations:
        return ["answered without citations"]
    problems = [f"citation [{c['n']}] not marked in the answer" for c in citations if f"[{c['n']}]" not in answer["answer"]]
    problems += span_problems(citations, article_text)
    if sources:
        problems += [f"citation from {c['source']!r} outside the filter {sources}" for c in citations
                     if c["source"] not in sources]
    return problems


def span_problems(items: list[dict], article_text: Callable[[str], str], key: str = "sentence") -> list[str]:
    """Items (citations or hits) whose [start:end] does not give back their sentence in their article."""
    return [f"{it['article_id']}[{it['start']}:{it['end']}] is not the cited sentence" for it in items
            if article_text(it["article_id"])[it["start"]:it["end"]] != it[key]]


def retrieve_problems(result, k: int, article_text: Callable[[str], str]) -> list[str]:
    """What is wrong with a /retrieve result: more than k hits, unsorted scores, offsets that do not slice."""
    if not isinstance(result, dict) or not isinstance(result.get("hits"), list):
        return ["no hits list"]
    hits = result["hits"]
    problems = [f"{len(hits)} hits for k={k}"] if len(hits) > k else []
    scores = [h["score"] for h in hits]
    if scores != sorted(scores, reverse=True):
        problems.append("hits not ranked by score")
    return problems + span_problems(hits, article_text)


# --- one simulated user ----------------------------------------------------------------------


@dataclass
class Record:
    """One request as the user saw it: how long it took and how it ended (ok, rejected as expected, error)."""

    user: int
    kind: str
    endpoint: str
    seconds: float
    outcome: str
    detail: str = ""


class SimUser:
    """A user with its own gradio_client.Client; ``run`` walks the mix until the deadline or its step budget."""

    def __init__(self, n: int, url: str, sources: list[str], timeout: float) -> None:
        self.n = n
        self.url = url
        self.sources = sources
        self.timeout = timeout
        self.client = None
        self.records: list[Record] = []
        self.last: dict | None = None  # the last answer, which a follow-up sends as history

    def connect(self) -> bool:
        from gradio_client import Client

        t0 = time.perf_counter()
        try:
            self.client = Client(self.url, verbose=False)
        except Exception as e:  # counted, not raised: one user failing to connect is a result
            self.records.append(Record(self.n, "connect", "connect", time.perf_counter() - t0, "error", describe(e)))
            return False
        return True

    def call(self, kind: str, expect: str = "", **kwargs):
        """One timed request; returns (result, its record). An error is recorded, not raised."""
        from gradio_client.exceptions import AppError

        endpoint = kwargs.pop("api_name")
        t0 = time.perf_counter()
        try:
            result = self.client.submit(api_name=endpoint, **kwargs).result(timeout=self.timeout)
        except Exception as e:
            seconds = time.perf_counter() - t0
            expected = bool(expect) and isinstance(e, AppError) and re.search(expect, str(e), re.I)
            record = Record(self.n, kind, endpoint, seconds, "rejected" if expected else "error", describe(e))
            self.records.append(record)
            return None, record
        record = Record(self.n, kind, endpoint, time.perf_counter() - t0, "ok")
        if expect:
            record.outcome, record.detail = "error", f"bad request accepted (expected an error matching {expect!r})"
        self.records.append(record)
        return result, record

    def article_text(self, article_id: str) -> str:
        """The article's text through /article, as a client shows a citation (so it is part of the load)."""
        article, _ = self.call("article", article_id=article_id, api_name="/article")
        return article["text"] if isinstance(article, dict) else ""

    def check(self, record: Record, find_problems: Callable[[], list[str]]) -> None:
        """Mark a successful request as an error if its response is malformed."""
        try:
            problems = find_problems()
        except (KeyError, TypeError, IndexError, AttributeError) as e:  # a field missing or of the wrong type
            problems = [describe(e)]
        if problems and record.outcome == "ok":
            record.outcome, record.detail = "error", "malformed: " + "; ".join(problems[:3])

    def run_step(self, step: Step, index: int) -> None:
        if step.kind == "bad":
            self.call("bad", expect=step.expect, **dict(step.call))
            return
        if step.kind == "retrieve":
            result, record = self.call("retrieve", question=step.question, k=5, api_name="/retrieve")
            if record.outcome == "ok":
                self.check(record, lambda: retrieve_problems(result, 5, self.cached_text()))
            return
        kwargs, sources = {"question": step.question}, None
        if step.kind == "follow_up" and self.last:
            kwargs["history"] = [[self.last["question"], self.last["answer"]]]
        if step.kind == "ask_filtered" and self.sources:
            sources = [self.sources[index % len(self.sources)]]
            kwargs["filters"] = {"sources": sources}
        answer, record = self.call(step.kind, api_name="/ask", **kwargs)
        if record.outcome == "ok":
            self.check(record, lambda: answer_problems(answer, self.cached_text(), sources))
            self.last = answer

    def cached_text(self) -> Callable[[str], str]:
        """Article texts for checking one response: each cited article is fetched once per response."""
        texts: dict[str, str] = {}

        def text(article_id: str) -> str:
            if article_id not in texts:
                texts[article_id] = self.article_text(article_id)
            return texts[article_id]

        return text

    def run(self, mix: list[Step], start: int, deadline: float, steps: int | None) -> None:
        i, done = start, 0
        while time.monotonic() < deadline and (steps is None or done < steps):
            self.run_step(mix[i % len(mix)], i)
            i, done = i + 1, done + 1


def describe(e: Exception) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


# --- memory of the app process ---------------------------------------------------------------


class MemorySampler:
    """Samples a process's resident memory (with its children) in a thread: before, peak, after, and a timeline."""

    def __init__(self, pid: int | None, every: float = 0.5) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def rss(self) -> int | None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except (psutil.Error, OSError):
            return None  # the process is gone: that shows as an error elsewhere

    def _sample(self) -> None:
        value = self.rss()
        if value is not None:
            self.samples.append((time.monotonic() - self._t0, value))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> "MemorySampler":
        if self.pid:
            self._t0 = time.monotonic()
            self._sample()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join()
            self._sample()

    def report(self, buckets: int = 12) -> dict | None:
        if not self.samples:
            return None
        values = [v for _, v in self.samples]
        end = self.samples[-1][0] or 1.0
        # The peak in each of a dozen equal slices of the run: flat means memory is bounded, rising means a leak.
        timeline = [max((v for t, v in self.samples if b * end / buckets <= t <= (b + 1) * end / buckets), default=None)
                    for b in range(buckets)]
        return {"pid": self.pid, "samples": len(values), "rss_before_mib": mib(values[0]),
                "rss_peak_mib": mib(max(values)), "rss_after_mib": mib(values[-1]),
                "peak_by_twelfth_mib": [mib(v) if v is not None else None for v in timeline],
                "lifetime_peak_mib": vm_hwm_mib(self.pid)}


def vm_hwm_mib(pid: int) -> float | None:
    """The process's lifetime peak resident memory (Linux VmHWM, includes startup and indexing), None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return mib(int(line.split()[1]) * 1024)
    except OSError:
        pass
    return None


# --- summary -------------------------------------------------------------------------------


def latency(records: list[Record]) -> dict:
    """Counts by outcome and latency percentiles (ms) of the successful requests."""
    secs = [r.seconds for r in records if r.outcome == "ok"]

    def ms(q):
        v = percentile(secs, q)
        return None if v is None else round(1000 * v, 1)

    return {"requests": len(records), "ok": len(secs), "rejected": sum(r.outcome == "rejected" for r in records),
            "errors": sum(r.outcome == "error" for r in records), "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99),
            "max_ms": ms(100)}


def summarize(records: list[Record], seconds: float) -> dict:
    """Totals, latency by request kind, by endpoint and overall, and the distinct errors with their counts."""
    def group(key):
        return {k: latency([r for r in records if key(r) == k]) for k in sorted({key(r) for r in records})}

    errors: dict[str, int] = {}
    for r in records:
        if r.outcome == "error":
            label = f"{r.endpoint} ({r.kind}): {r.detail}"
            errors[label] = errors.get(label, 0) + 1
    overall = latency(records)
    asks = sum(r.endpoint == "/ask" and r.outcome == "ok" for r in records)
    return {
        "requests": overall["requests"], "ok": overall["ok"], "errors": overall["errors"],
        "expected_rejections": overall["rejected"], "seconds": round(seconds, 1),
        "requests_per_s": round(len(records) / seconds, 2) if seconds else None,
        "answers_per_s": round(asks / seconds, 2) if seconds else None,
        "overall": overall, "by_kind": group(lambda r: r.kind), "by_endpoint": group(lambda r: r.endpoint),
        "error_messages": [{"message": m, "count": n} for m, n in sorted(errors.items(), key=lambda x: -x[1])][:20],
    }


def machine() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- running it ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(stack: ExitStack, corpus: Path, index: Path | None, app_args: list[str]):
    """The real app (tests/app_server.py's AppProcess) on a free loopback port; stopped when ``stack`` closes."""
    from tests.app_server import AppProcess

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsdesk-load-")))
    app = AppProcess(Path(corpus).resolve(), Path(index or work / "index").resolve(), free_port(), work / "app.log",
                     *app_args)
    return stack.enter_context(app)


def run_load(url: str, pid: int | None, questions: list[str], users: int, duration: float | None,
             per_user: int | None = None, timeout: float = 120.0) -> dict:
    """``users`` simulated users against the app at ``url`` until ``duration`` seconds pass or each made ``per_user`` steps."""
    from gradio_client import Client

    stats = Client(url, verbose=False).predict(api_name="/stats")
    mix = build_mix(questions)
    sims = [SimUser(n, url, stats["sources"], timeout) for n in range(users)]
    clock: dict[str, float] = {}
    # Everyone connects first; the clock starts when the last one is ready, so all users start together.
    barrier = threading.Barrier(users, action=lambda: clock.setdefault("t0", time.monotonic()))

    def user(sim: SimUser) -> None:
        ok = sim.connect()
        barrier.wait()
        if not ok:
            return
        deadline = clock["t0"] + duration if duration else float("inf")
        try:
            sim.run(mix, sim.n * len(mix) // users, deadline, per_user)
        except Exception as e:  # a bug here must show in the report, not silently end one user
            sim.records.append(Record(sim.n, "user", "none", 0.0, "error", f"user stopped: {describe(e)}"))

    threads = [threading.Thread(target=user, args=(s,), name=f"user-{s.n}") for s in sims]
    before = load_average()
    with MemorySampler(pid) as memory:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - clock.get("t0", time.monotonic())
    records = [r for s in sims for r in s.records]
    return {"users": users, "duration_s": duration, "per_user": per_user, "mix_steps": len(mix),
            "index": {k: stats[k] for k in ("articles", "sentences")}, "load_average_before": before,
            "load_average_after": load_average(), "memory": memory.report()} | summarize(records, seconds)


def _row(name: str, s: dict) -> str:
    cells = [s["requests"], s["ok"], s["rejected"], s["errors"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]]
    return f"| {name} | " + " | ".join("–" if c is None else str(c) for c in cells) + " |"


def markdown(report: dict) -> str:
    """The report as a markdown section: the run, totals, a latency table and memory."""
    run, m = report["run"], report["machine"]
    lines = [
        f"Measured {run['date']} with `{run['command']}`",
        f"({m['cpus']} CPUs, {m['ram_gib']} GiB RAM, {m['platform']}; app: {run['app']}).",
        f"Load average (1, 5, 15 min) {report['load_average_before']} before, {report['load_average_after']} after.",
        "",
        f"{report['users']} users for {report['seconds']} s over {report['index']['articles']} articles "
        f"({report['index']['sentences']} sentences): {report['requests']} requests, **{report['errors']} unexpected "
        f"errors**, {report['expected_rejections']} bad requests rejected as expected; {report['requests_per_s']} "
        f"requests/s, {report['answers_per_s']} answers/s.",
        "",
        "| requests | n | ok | rejected (expected) | errors | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(k, v) for k, v in report["by_kind"].items()]
    lines += [_row(f"endpoint {k}", v) for k, v in report["by_endpoint"].items()]
    lines.append(_row("**all**", report["overall"]))
    mem = report["memory"]
    if mem:
        lines += ["", f"App memory (RSS, pid {mem['pid']}, {mem['samples']} samples): {mem['rss_before_mib']} MiB before, "
                  f"peak {mem['rss_peak_mib']} MiB, {mem['rss_after_mib']} MiB after; lifetime peak (VmHWM, "
                  f"including start-up and indexing) {mem['lifetime_peak_mib']} MiB. Peak in each twelfth of the run "
                  f"(MiB): {', '.join(str(v) for v in mem['peak_by_twelfth_mib'])}."]
    else:
        lines += ["", "App memory: not measured (give --pid with --url)."]
    if report["error_messages"]:
        lines += ["", "Errors:", ""] + [f"- {e['count']} × {e['message']}" for e in report["error_messages"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python eval/load.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20, help="simulated users at once (default 20)")
    p.add_argument("--duration", type=float, default=120, help="seconds of load (default 120; 0: until --per-user)")
    p.add_argument("--per-user", type=int, default=None, help="stop each user after this many steps of the mix")
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS,
                   help="question set (.jsonl as in eval/questions, or text, one a line); default seeds.jsonl")
    p.add_argument("--url", default=None, help="a running app; without it the script starts one")
    p.add_argument("--pid", type=int, default=None, help="with --url: the app's process id, to sample its memory")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus of the app it starts (default corpus/)")
    p.add_argument("--index", type=Path, default=None, help="index of the app it starts (default: a fresh temporary one)")
    p.add_argument("--concurrency", type=int, default=None, help="passed to the app it starts (default: the app's)")
    p.add_argument("--queue-size", type=int, default=None, help="passed to the app it starts (default: the app's)")
    p.add_argument("--timeout", type=float, default=120, help="seconds before a request counts as failed (default 120)")
    p.add_argument("--out", type=Path, default=None, help="write the report here as JSON, and as markdown next to it (.md)")
    args = p.parse_args(argv)
    if args.users < 1 or (not args.duration and not args.per_user):
        p.error("need --users >= 1 and a bound: --duration and/or --per-user")
    return args


def run(args: argparse.Namespace, command: str) -> dict:
    """Start the app unless --url is given, run the load, and return the report."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    questions = load_questions(args.questions)
    app_args = []
    for flag, value in (("--concurrency", args.concurrency), ("--queue-size", args.queue_size)):
        if value is not None:
            app_args += [flag, str(value)]
    started = datetime.now().isoformat(timespec="seconds")
    with ExitStack() as stack:
        proc = None if args.url else start_app(stack, args.corpus, args.index, app_args)
        if proc:
            url, pid = proc.url, proc.proc.pid
            app = " ".join(["app.py", "--corpus", str(args.corpus), *app_args]) + " (started by the script)"
        else:
            url, pid, app = args.url, args.pid, f"running at {args.url}"
        report = run_load(url, pid, questions, args.users, args.duration or None, args.per_user, args.timeout)
        # Queue, not crash: the app the script started must still be serving when the load ends.
        report["app_alive_after"] = proc.alive() if proc else None
    return {"run": {"date": started, "command": command, "app": app, "questions": str(args.questions)},
            "machine": machine()} | report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    report = run(args, shlex.join([".venv/bin/python", "eval/load.py", *argv]))
    text = markdown(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text("# Load test\n\n" + text + "\n")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
