"""The scale benchmark's synthetic index: valid records the engine can read and search, derived as described."""

from __future__ import annotations

import numpy as np

from rag.bench import NOISE, BulkWriter, markdown, source_sentences, synthetic_copy
from rag.config import Config
from rag.ingest import ingest
from rag.pipeline import Newsdesk
from rag.store import Store
from tests.conftest import FakeEmbedder, write_corpus

ARTICLES = {
    "a.txt": "Acme profits jump\n\nAcme Corp said its profits rose 12% to £40m in 2004. The firm makes rubber widgets in Leeds.\n",
    "b.txt": "Rain floods York\n\nHeavy rain flooded the city of York on Tuesday. More than 300 homes were evacuated.\n",
}


def test_synthetic_copies_grow_an_index_the_engine_can_search(tmp_path):
    embedder = FakeEmbedder()
    source = Config(corpus=write_corpus(tmp_path / "corpus", ARTICLES), index=tmp_path / "src", granularity="window")
    ingest(source, Store(source), embedder)
    items, base = source_sentences(source)
    assert base == {"articles": 2, "sentences": 6}  # title line + two sentences each

    rng = np.random.default_rng(0)
    article, sentences, vectors = items[0]
    copy, copy_sentences, copy_vectors = synthetic_copy(article, sentences, vectors, 1, rng)
    assert copy.id == f"synthetic/001/{article.id}" and len(copy_sentences) == len(sentences)
    for s, original in zip(copy_sentences, sentences):
        assert copy.text[s.start:s.end] == s.text
        assert set(s.text.split()) <= set(original.text.split())  # the same words, some dropped, shuffled
    assert np.allclose(np.linalg.norm(copy_vectors, axis=1), 1.0, atol=1e-5)
    cos = (copy_vectors * vectors).sum(axis=1)
    assert np.all(cos > 0.8) and np.all(cos < 0.999)  # perturbed, not copied: ~1/sqrt(1 + 384 * NOISE^2)
    assert abs(float(cos.mean()) - 1 / np.sqrt(1 + 384 * NOISE**2)) < 0.05

    scale = Config(index=tmp_path / "scale", collection="scale", granularity="sentence", corpus=tmp_path / "none")
    writer = BulkWriter(Store(scale))
    for item in items:
        writer.add(*item)
    for n in (1, 2):
        for a, s, v in items:
            writer.add(*synthetic_copy(a, s, v, n, rng))
    writer.flush()
    assert writer.written == 18

    desk = Newsdesk(scale, embedder=embedder)
    stats = desk.stats()
    assert (stats["articles"], stats["sentences"], stats["chunks"]) == (6, 18, 18)
    lib = desk.store.library()
    for aid, sents in lib.sentences.items():
        assert all(lib.articles[aid].text[s.start:s.end] == s.text for s in sents)
    hits = desk.retrieve("How many homes were evacuated in York?", k=3)
    assert hits[0].article_id.endswith("b.txt")  # the article or one of its synthetic copies
    assert any("b.txt" in (h.article_id, *h.also_in) for h in hits)  # near-identical copies collapse into one hit


def test_markdown_tables_name_the_command_and_the_load():
    measured = {"date": "2026-01-01T00:00:00", "command": "python -m rag bench --only latency",
                "load_average_start": [0.5, 0.4, 0.3], "load_average_end": [1.0, 0.6, 0.4]}
    lat = {"p50_ms": 10.0, "p95_ms": 20.0, "throughput_per_s": 50.0}
    result = {
        "run": {"date": "2026-01-01T00:00:00", "command": "python -m rag bench --only latency", "cpus": 2, "ram_gib": 24,
                "platform": "Linux", "torch_threads": 2},
        "latency": {"index": "idx", "sentences": 100, "questions": 5, "threads": 8, "rss_peak_mib": 700,
                    "retrieve_single": lat, "retrieve_concurrent": lat, "ask_single": lat, "ask_concurrent": lat,
                    "measured": measured},
    }
    md = markdown(result)
    assert "2 CPUs" in md and "`python -m rag bench --only latency`" in md
    assert "| retrieve | 8 | 10.0 | 20.0 | 50.0 |" in md
    assert "[0.5, 0.4, 0.3] at start" in md
