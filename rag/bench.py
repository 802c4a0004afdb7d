"""``python -m rag bench``: ingest speed, latency, memory and disk, on the BBC corpus and at scale.

Parts (``--only ingest,latency,scale``; all by default):

- ingest: a fresh index of the corpus (under ``--out``), its throughput in sentences/s and as a
  share of the raw encoder throughput measured on the same texts in the same run; re-ingest of
  the unchanged corpus; the plain llama-index pipeline indexing the same articles; peak RSS and
  index size on disk.
- latency: retrieval and answer latency p50/p95 over the question set's questions, one user and
  ``--threads`` concurrent threads.
- scale: an index grown to ``--sizes`` sentences (default 50k, 250k, 1M) under ``--out``. It
  starts from the real corpus sentences and their stored vectors; the rest are synthetic copies of
  the corpus articles, never re-encoded: each sentence's vector gets Gaussian noise (sigma 0.025
  per dimension, cosine to its source about 0.9) and is renormalised, and its text has one word in
  five dropped and the rest shuffled, so BM25 sees related but not identical documents. Each size
  is measured in a fresh process (so memory is that of serving the index): time to open, retrieval
  and answer latency p50/p95, peak RSS, and the index size on disk.

Writes ``bench.json`` and ``bench.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np

from rag.config import Config
from rag.metrics import percentile

DEFAULT_CORPUS = Path("../shared/datasets/bbc-news")
DEFAULT_QUESTIONS = Path("eval/questions/bbc-dev.jsonl")
DEFAULT_SIZES = (50_000, 250_000, 1_000_000)
PARTS = ("ingest", "latency", "scale", "backends")
DEFAULT_PARTS = ("ingest", "latency", "scale")
NOISE = 0.025  # per-dimension sigma of the synthetic vectors' noise: cosine to the source ~ 1/sqrt(1 + 384 sigma^2)
DROP = 0.2  # share of words dropped from a synthetic sentence before shuffling
_ADD_BATCH = 5000  # records per Chroma add; below its maximum batch size


# --- measuring ------------------------------------------------------------------------------


class PeakRSS:
    """Samples this process's resident memory in a thread while the ``with`` block runs."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.start = self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        import psutil

        return psutil.Process().memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def peak_rss_of_process() -> int | None:
    """This process's lifetime peak resident memory (Linux VmHWM), None where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mib(n: int | float) -> float:
    return round(n / 2**20, 1)


def disk_bytes(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def latencies(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": _ms(percentile(values, 50)), "p95_ms": _ms(percentile(values, 95)),
            "mean_ms": _ms(sum(values) / len(values)) if values else None}


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def pages(collection, include: list[str], size: int = 5000):
    """A Chroma collection's records, a page at a time."""
    offset = 0
    while True:
        batch = collection.get(include=include, limit=size, offset=offset)
        if not batch["ids"]:
            return
        yield batch
        offset += len(batch["ids"])


def load_question_texts(path: Path) -> list[str]:
    from rag.evaluation import load_questions

    return [q["question"] for q in load_questions(path)]


# --- ingest ---------------------------------------------------------------------------------


def bench_ingest(config: Config, work: Path, encoder_sample: int = 2000, progress: bool = False) -> dict:
    """Fresh ingest, raw encoder throughput on the same texts, re-ingest, and llama-index on the same articles."""
    from rag.baseline import LlamaIndexBaseline
    from rag.corpus import load_folder
    from rag.embedding import SentenceTransformerEmbedder
    from rag.ingest import ingest
    from rag.store import Store

    index = work / "bbc-index"
    shutil.rmtree(index, ignore_errors=True)
    config = config.with_(index=index, chroma_url=None)
    out: dict = {"corpus": str(config.corpus), "granularity": config.granularity, "backend": config.backend,
                 "batch_size": config.batch_size}

    embedder = SentenceTransformerEmbedder(config.model_path, config.backend, config.batch_size)
    out["model_load_seconds"] = round(timed(embedder.embed, ["warm up"]), 2)

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        report = ingest(config, Store(config), embedder, progress=progress)
        seconds = time.perf_counter() - t0
    out["fresh"] = {
        "articles": report.articles, "sentences": report.sentences, "chunks": report.chunks, "seconds": round(seconds, 1),
        "sentences_per_s": round(report.sentences / seconds, 1), "chunks_per_s": round(report.chunks / seconds, 1),
        "rss_before_mib": mib(rss.start), "rss_peak_mib": mib(rss.peak),
        "skipped_files": len(report.skipped),
    }
    out["index_bytes"] = disk_bytes(index)
    out["index_mib"] = mib(out["index_bytes"])

    # The raw encoder on a sample of the very texts ingest embedded: what the pipeline could reach.
    docs = [d for b in pages(Store(config).chunks, ["documents"]) for d in b["documents"]]
    rng = np.random.default_rng(0)
    sample = [docs[i] for i in rng.choice(len(docs), size=min(encoder_sample, len(docs)), replace=False)]
    secs = timed(embedder.embed, sample)
    out["encoder"] = {"texts": len(sample), "seconds": round(secs, 1), "chunks_per_s": round(len(sample) / secs, 1)}
    out["ingest_vs_encoder"] = round(out["fresh"]["chunks_per_s"] / out["encoder"]["chunks_per_s"], 3)

    t0 = time.perf_counter()
    again = ingest(config, Store(config), embedder)
    out["reingest"] = {"seconds": round(time.perf_counter() - t0, 2), "embedded": again.embedded,
                       "added": again.added, "updated": again.updated, "removed": again.removed}

    # The plain llama-index pipeline over the same articles, model loaded beforehand as for ours.
    articles, _, _ = load_folder(config.corpus)
    baseline = LlamaIndexBaseline(config.model_path)
    t0 = time.perf_counter()
    baseline.load()
    load_secs = time.perf_counter() - t0
    with PeakRSS() as rss:
        secs = baseline.build(articles, progress=progress)
    out["llamaindex"] = {"articles": len(articles), "chunks": baseline.chunks, "seconds": round(secs, 1),
                         "model_load_seconds": round(load_secs, 2), "rss_peak_mib": mib(rss.peak),
                         "sentences_per_s": round(report.sentences / secs, 1),
                         "ours_vs_llamaindex_time": round(seconds / secs, 2)}
    return out


# --- latency --------------------------------------------------------------------------------


def bench_latency(desk, questions: list[str], threads: int = 8) -> dict:
    """Retrieval and answer latency, one user then ``threads`` at once, over ``questions``."""
    desk.retrieve(questions[0])  # load model and indexes before timing
    desk.ask(questions[0])
    out: dict = {"questions": len(questions), "threads": threads}
    with PeakRSS() as rss:
        for name, fn in (("retrieve", desk.retrieve), ("ask", desk.ask)):
            single = [timed(fn, q) for q in questions]
            out[f"{name}_single"] = latencies(single)

            def one(q, fn=fn):
                return timed(fn, q)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=threads) as pool:
                many = list(pool.map(one, questions * 2))  # two rounds keep every thread busy
            wall = time.perf_counter() - t0
            out[f"{name}_concurrent"] = latencies(many) | {"throughput_per_s": round(len(many) / wall, 2)}
            out[f"{name}_single"]["throughput_per_s"] = round(len(single) / sum(single), 2)
    out["rss_peak_mib"] = mib(rss.peak)
    return out


# --- embedding backends ---------------------------------------------------------------------


def bench_backends(texts: list[str], backends=("torch", "onnx", "onnx-int8"), batch_size: int = 64,
                   cache_dir: Path | None = None) -> dict:
    """Encoder speed of each backend on the same texts, and how close its vectors are to torch's."""
    from rag.embedding import SentenceTransformerEmbedder

    out: dict = {"texts": len(texts), "mean_chars": round(sum(map(len, texts)) / len(texts)), "backends": {}}
    reference = None
    for b in backends:
        e = SentenceTransformerEmbedder(backend=b, batch_size=batch_size, cache_dir=cache_dir)
        load = timed(e.embed, ["warm up"])  # includes the one-time ONNX export when not cached yet
        t0 = time.perf_counter()
        v = e.embed(texts)
        secs = time.perf_counter() - t0
        row = {"load_seconds": round(load, 2), "seconds": round(secs, 2), "texts_per_s": round(len(texts) / secs, 1)}
        if reference is None:
            reference = v
        cos = (v * reference).sum(axis=1)
        row |= {"cosine_to_first_mean": round(float(cos.mean()), 5), "cosine_to_first_min": round(float(cos.min()), 5)}
        out["backends"][b] = row
    first = next(iter(out["backends"].values()))
    for row in out["backends"].values():
        row["speedup"] = round(row["texts_per_s"] / first["texts_per_s"], 2)
    return out


# --- scale ----------------------------------------------------------------------------------


def _perturb_words(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    if not words:
        return text
    keep = [w for w in words if rng.random() >= DROP] or [words[0]]
    rng.shuffle(keep)
    return " ".join(keep)


def source_sentences(config: Config) -> tuple[list, dict]:
    """Every article of an index with, per sentence, the vector that stands for it (no re-encoding).

    Sentence/window indexes store one vector per sentence (its anchor); a chunk index lends each
    sentence its chunk's vector.
    """
    from rag.store import Store

    store = Store(config)
    lib = store.library()
    vectors: dict[tuple[str, int], np.ndarray] = {}
    for batch in pages(store.chunks, ["metadatas", "embeddings"]):
        for meta, emb in zip(batch["metadatas"], batch["embeddings"]):
            for i in map(int, str(meta["sentences"]).split(",")):
                vectors.setdefault((meta["article_id"], i), np.asarray(emb, dtype=np.float32))
    items = []
    for aid in sorted(lib.articles):
        sents = lib.sentences[aid]
        if sents and all((aid, s.index) in vectors for s in sents):
            items.append((lib.articles[aid], sents, np.stack([vectors[(aid, s.index)] for s in sents])))
    return items, {"articles": len(items), "sentences": sum(len(s) for _, s, _ in items)}


def synthetic_copy(article, sentences, vectors: np.ndarray, n: int, rng: np.random.Generator):
    """The ``n``-th synthetic copy of an article: shuffled words, noisy renormalised vectors."""
    from rag.types import Article, Sentence

    aid = f"synthetic/{n:03d}/{article.id}"
    texts = [_perturb_words(s.text, rng) for s in sentences]
    parts, spans, pos = [], [], 0
    for t in texts:
        spans.append((pos, pos + len(t)))
        parts.append(t)
        pos += len(t) + 1
    text = " ".join(parts)
    copy = Article(id=aid, text=text, title=_perturb_words(article.title, rng), source="synthetic",
                   published=article.published)
    sents = [Sentence(aid, i, s, e, text[s:e]) for i, (s, e) in enumerate(spans)]
    noisy = vectors + rng.normal(0.0, NOISE, size=vectors.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return copy, sents, noisy


class BulkWriter:
    """Writes articles with precomputed vectors in large Chroma batches.

    The records are the ones ``Store.write`` makes (``rag/store.py``); ``Store.write`` replaces one
    article at a time, which is right for ingest but far too slow to load a million sentences.
    """

    def __init__(self, store) -> None:
        self.store = store
        self.chunks: list[tuple] = []
        self.articles: list[tuple] = []
        self.written = 0

    def add(self, article, sentences, vectors: np.ndarray) -> None:
        from rag.chunking import chunk
        from rag.store import _date_key

        config = self.store.config
        date = _date_key(article.published)
        for c, v in zip(chunk(article, sentences, config), vectors):
            meta = {"article_id": c.article_id, "anchor": c.anchor, "sentences": ",".join(map(str, c.sentence_indices)),
                    "start": c.start, "end": c.end, "source": article.source, "published": date or 0}
            self.chunks.append((c.id, v, c.text, meta))
        meta = {"hash": article.hash, "title": article.title, "source": article.source, "url": article.url,
                "spans": json.dumps([[s.start, s.end] for s in sentences])}
        if article.published:
            meta["published"] = article.published
            meta["published_key"] = date
        mean = vectors.mean(axis=0)
        self.articles.append((article.id, mean / (np.linalg.norm(mean) or 1.0), article.text, meta))
        self.written += len(sentences)
        if len(self.chunks) >= _ADD_BATCH:
            self.flush()

    def flush(self) -> None:
        # Chunks before their article records, as ingest does: the article record marks completion.
        for rows, coll in ((self.chunks, self.store.chunks), (self.articles, self.store.articles)):
            for i in range(0, len(rows), _ADD_BATCH):
                part = rows[i : i + _ADD_BATCH]
                coll.add(ids=[r[0] for r in part], embeddings=np.stack([r[1] for r in part]),
                         documents=[r[2] for r in part], metadatas=[r[3] for r in part])
        self.chunks, self.articles = [], []


def probe(index: Path, collection: str, questions: list[str], answer: bool = True) -> dict:
    """Open an index and time questions against it; run in a fresh process to measure its memory."""
    from rag.pipeline import Newsdesk

    config = Config(index=index, collection=collection, granularity="sentence", corpus=index / "no-corpus")
    with PeakRSS() as rss:
        desk = Newsdesk(config)
        model = timed(desk.embed, ["warm up"])
        t0 = time.perf_counter()
        desk.store.library()
        desk.store.ensure_lexical()
        opened = time.perf_counter() - t0
        first = timed(desk.retrieve, questions[0])
        retrieve = [timed(desk.retrieve, q) for q in questions]
        asked = [timed(desk.ask, q) for q in questions] if answer else []
    return {"model_load_seconds": round(model, 2), "open_seconds": round(opened, 2), "first_query_ms": _ms(first),
            "retrieve": latencies(retrieve), "ask": latencies(asked) if asked else None,
            "rss_peak_mib": mib(max(rss.peak, peak_rss_of_process() or 0)),
            "stats": {k: v for k, v in desk.stats().items() if k in ("articles", "sentences", "chunks")}}


def run_probe(index: Path, collection: str, questions_file: Path, limit: int) -> dict:
    cmd = [sys.executable, "-m", "rag", "bench", "--probe", str(index), "--probe-collection", collection,
           "--questions", str(questions_file), "--probe-questions", str(limit)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"probe failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_scale(source: Config, sizes: list[int], work: Path, questions_file: Path, probe_questions: int,
                log=print) -> dict:
    """Grow a synthetic index through ``sizes`` sentences, measuring each size in a fresh process."""
    from rag.store import Store

    index = work / "scale-index"
    shutil.rmtree(index, ignore_errors=True)
    config = Config(index=index, collection="scale", granularity="sentence", corpus=index / "no-corpus")
    items, base = source_sentences(source)
    if not items:
        raise RuntimeError(f"the source index {source.index} holds no articles to grow from")
    rng = np.random.default_rng(0)
    writer = BulkWriter(Store(config))
    out = {"source_index": str(source.index), "source": base, "noise_sigma": NOISE, "word_drop": DROP, "steps": []}
    real = iter(items)
    copy_n, order = 0, []
    for size in sorted(sizes):
        t0 = time.perf_counter()
        while writer.written < size:
            nxt = next(real, None)
            if nxt is not None:
                writer.add(*nxt)
                continue
            if not order:  # one more round of synthetic copies, in a fresh random article order
                copy_n += 1
                order = list(rng.permutation(len(items)))
            a, s, v = items[order.pop()]
            writer.add(*synthetic_copy(a, s, v, copy_n, rng))
        writer.flush()
        write_secs = time.perf_counter() - t0
        t0 = time.perf_counter()
        Store(config).sync_lexical(force=True)
        bm25_secs = time.perf_counter() - t0
        log(f"scale: {writer.written:,} sentences written, probing ...")
        step = {"target": size, "sentences": writer.written, "write_seconds": round(write_secs, 1),
                "bm25_build_seconds": round(bm25_secs, 1), "index_mib": mib(disk_bytes(index))}
        step |= run_probe(index, config.collection, questions_file, probe_questions)
        out["steps"].append(step)
        log(f"scale: {json.dumps(step)}")
    return out


# --- report ---------------------------------------------------------------------------------


def _row(*cells) -> str:
    return "| " + " | ".join("–" if c is None else str(c) for c in cells) + " |"


def _measured(section: dict) -> str:
    m = section.get("measured") or {}
    return (f"Measured {m.get('date')} with `{m.get('command')}`; load average (1, 5, 15 min) "
            f"{m.get('load_average_start')} at start, {m.get('load_average_end')} at end.")


def markdown(result: dict) -> str:
    r = result["run"]
    lines = [
        "# Benchmarks", "",
        f"- machine: {r['cpus']} CPUs, {r['ram_gib']} GiB RAM ({r['platform']}); torch threads: {r['torch_threads']}",
        f"- last run: {r['date']}, `{r['command']}`",
        "- a load average above the CPU count means other work competed for the CPUs during that part", "",
    ]
    if "ingest" in result:
        i = result["ingest"]
        f, li = i["fresh"], i["llamaindex"]
        lines += [
            f"## Ingest ({i['corpus']}, granularity={i['granularity']}, backend={i['backend']})", "", _measured(i), "",
            "| what | value |", "|---|---|",
            _row("articles / sentences / chunks", f"{f['articles']} / {f['sentences']} / {f['chunks']}"),
            _row("fresh ingest", f"{f['seconds']} s"),
            _row("ingest throughput", f"{f['sentences_per_s']} sentences/s ({f['chunks_per_s']} chunks/s)"),
            _row("raw encoder, same texts", f"{i['encoder']['chunks_per_s']} chunks/s ({i['encoder']['texts']} texts)"),
            _row("ingest / raw encoder", i["ingest_vs_encoder"]),
            _row("re-ingest, unchanged corpus", f"{i['reingest']['seconds']} s, {i['reingest']['embedded']} chunks embedded"),
            _row("peak RSS during ingest", f"{f['rss_peak_mib']} MiB"),
            _row("index on disk", f"{i['index_mib']} MiB"),
            _row("model load", f"{i['model_load_seconds']} s"),
            "",
            "Plain llama-index on the same articles (VectorStoreIndex.from_documents, default chunking, same model):", "",
            "| system | chunks embedded | seconds | sentences/s | peak RSS (MiB) |", "|---|---|---|---|---|",
            _row("newsdesk", f["chunks"], f["seconds"], f["sentences_per_s"], f["rss_peak_mib"]),
            _row("llama-index", li["chunks"], li["seconds"], li["sentences_per_s"], li["rss_peak_mib"]),
            "",
        ]
    if "latency" in result:
        lt = result["latency"]
        lines += [
            f"## Latency ({lt['index']}, {lt['sentences']} sentences, {lt['questions']} questions)", "", _measured(lt), "",
            "| operation | users | p50 (ms) | p95 (ms) | throughput (/s) |", "|---|---|---|---|---|",
        ]
        for op in ("retrieve", "ask"):
            s, c = lt[f"{op}_single"], lt[f"{op}_concurrent"]
            lines.append(_row(op, 1, s["p50_ms"], s["p95_ms"], s["throughput_per_s"]))
            lines.append(_row(op, lt["threads"], c["p50_ms"], c["p95_ms"], c["throughput_per_s"]))
        lines += ["", f"Peak RSS while serving: {lt['rss_peak_mib']} MiB.", ""]
    if "backends" in result:
        bk = result["backends"]
        lines += [
            f"## Embedding backends ({bk['texts']} {bk['granularity']} texts of {bk['index']}, {bk['mean_chars']} characters on average)", "",
            _measured(bk), "",
            "| backend | texts/s | speed-up | load + export (s) | cosine to torch, mean / min |", "|---|---|---|---|---|",
        ]
        for name, row in bk["backends"].items():
            lines.append(_row(name, row["texts_per_s"], row["speedup"], row["load_seconds"],
                              f"{row['cosine_to_first_mean']} / {row['cosine_to_first_min']}"))
        lines.append("")
    if "scale" in result:
        sc = result["scale"]
        lines += [
            "## Scale", "", _measured(sc), "",
            f"Grown from {sc['source']['sentences']} real sentences of {sc['source']['articles']} articles "
            f"({sc['source_index']}); the rest are synthetic copies: vectors + N(0, {sc['noise_sigma']}²) noise, "
            f"renormalised (no re-encoding); text with {int(sc['word_drop'] * 100)}% of words dropped, the rest shuffled. "
            "Each size is measured in a fresh process (sentence granularity).", "",
            "| sentences | index on disk (MiB) | write (s) | BM25 build (s) | open (s) | first query (ms) | retrieve p50 / p95 (ms) | ask p50 / p95 (ms) | peak RSS (MiB) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in sc["steps"]:
            ask = s.get("ask") or {}
            lines.append(_row(f"{s['sentences']:,}", s["index_mib"], s["write_seconds"],
                              s["bm25_build_seconds"], s["open_seconds"], s["first_query_ms"],
                              f"{s['retrieve']['p50_ms']} / {s['retrieve']['p95_ms']}",
                              f"{ask.get('p50_ms')} / {ask.get('p95_ms')}", s["rss_peak_mib"]))
        lines.append("")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    from rag.cli import add_config_flags

    p = argparse.ArgumentParser(
        prog="python -m rag bench", description="Speed, memory and scale benchmarks.",
        epilog=f"Default --corpus: {DEFAULT_CORPUS}. Without --index, the latency, backends and scale parts use the "
               "index the ingest part builds under OUT/work (and build it if missing); scale writes its synthetic "
               "index under OUT/work too. Parts run into the same --out are merged into one bench.json/bench.md.",
    )
    add_config_flags(p)
    p.add_argument("--only", default=",".join(DEFAULT_PARTS),
                   help=f"comma-separated parts to run: {','.join(PARTS)} (default: {','.join(DEFAULT_PARTS)})")
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="scale sizes in sentences, comma-separated")
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help=f"questions to time (default: {DEFAULT_QUESTIONS})")
    p.add_argument("--threads", type=int, default=8, help="concurrent users for the latency part (default 8)")
    p.add_argument("--backend-texts", type=int, default=2000, help="texts encoded per backend in the backends part")
    p.add_argument("--probe-questions", type=int, default=40, help="questions timed at each scale size (default 40)")
    p.add_argument("--out", type=Path, default=Path("eval-out/bench"), help="output and work folder (default eval-out/bench)")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # internal: measure one scale index, print JSON
    p.add_argument("--probe-collection", default="scale", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    from rag.cli import config_from

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    if args.probe:
        questions = load_question_texts(args.questions)[: args.probe_questions]
        print(json.dumps(probe(args.probe, args.probe_collection, questions)))
        return 0

    parts = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(f"error: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    try:
        sizes = [int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        print(f"error: --sizes takes whole numbers, e.g. 50000,250000,1000000 (got {args.sizes!r})", file=sys.stderr)
        return 2
    config = config_from(args)
    if args.corpus is None and not os.environ.get("NEWSDESK_CORPUS"):
        config = config.with_(corpus=DEFAULT_CORPUS)
    needs_corpus = "ingest" in parts or (args.index is None and not config.chroma_url)
    if needs_corpus and not Path(config.corpus).is_dir():
        print(f"error: no corpus folder at {config.corpus} (give --corpus)", file=sys.stderr)
        return 2
    try:
        questions = load_question_texts(args.questions) if {"latency", "scale"} & set(parts) else []
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import psutil
    import torch

    out = args.out
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "rag", "bench", *argv])
    result: dict = {"run": {
        "date": datetime.now().isoformat(timespec="seconds"), "command": command,
        "cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "python": platform.python_version(), "parts": parts,
    }}
    # Parts measured by an earlier run into the same --out and not re-run now are kept, each with
    # its own date and command, so parts can be run one at a time into one table.
    previous = out / "bench.json"
    if previous.exists():
        try:
            old = json.loads(previous.read_text())
        except ValueError:
            old = {}
        result |= {k: v for k, v in old.items() if k in PARTS and k not in parts}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def save() -> None:
        (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "bench.md").write_text(markdown(result) + "\n")

    def measure(name: str, fn) -> None:
        # Other work on a shared machine skews timings: the load average says how busy it was.
        when = {"date": datetime.now().isoformat(timespec="seconds"), "command": command,
                "load_average_start": [round(x, 2) for x in os.getloadavg()]}
        log(f"{name} ...")
        value = fn()
        value["measured"] = when | {"load_average_end": [round(x, 2) for x in os.getloadavg()]}
        result[name] = value
        log(f"{name}: {json.dumps(value)}")
        save()

    # The index that latency and scale use: --index if given, else the one the ingest part builds.
    served = config if args.index is not None or config.chroma_url else config.with_(index=work / "bbc-index")
    if "ingest" in parts:
        measure("ingest", lambda: bench_ingest(config, work, progress=args.progress))
    if {"latency", "scale", "backends"} & set(parts):
        from rag.pipeline import Newsdesk

        desk = Newsdesk(served)
        if desk.store.articles.count() == 0 or "ingest" not in parts:
            desk.ingest(progress=args.progress)  # embeds nothing when the index is current
        if "latency" in parts:
            stats = desk.stats()
            measure("latency", lambda: {"index": str(served.chroma_url or served.index), "sentences": stats["sentences"],
                                        "granularity": served.granularity} | bench_latency(desk, questions, args.threads))
        del desk
    if "backends" in parts:
        from rag.store import Store

        docs = [d for b in pages(Store(served).chunks, ["documents"]) for d in b["documents"]]
        rng = np.random.default_rng(1)
        sample = [docs[i] for i in rng.choice(len(docs), size=min(args.backend_texts, len(docs)), replace=False)]
        measure("backends", lambda: {"index": str(served.index), "granularity": served.granularity}
                | bench_backends(sample, batch_size=served.batch_size))
    if "scale" in parts:
        measure("scale", lambda: bench_scale(served, sizes, work, args.questions, args.probe_questions, log=log))
    save()
    print(markdown(result))
    return 0
