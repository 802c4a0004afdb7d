"""Reliability and exposure: kill -9 mid-ingest, two ingests at once, ingest while serving, a full or
read-only disk; and what a caller without the password, or with a hostile path, can reach.

The embedding model is not the point here, so the engine runs with FakeEmbedder: in this process, or in
a real ``python -m rag`` process whose embedder is swapped for it (CHILD). The app is the real Gradio
server on a free loopback port, called over HTTP and with gradio_client. The disk tests mount a small
tmpfs or a read-only bind mount, so ENOSPC and EROFS come from the kernel (we run as root, so chmod
would stop nothing); where this user may not mount, they are skipped and say why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, FakeEmbedder, free_port, snapshot, write_corpus

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # app.py lives at the top of the repository

from rag import cli  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import Newsdesk  # noqa: E402
from rag.store import Store  # noqa: E402

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

# `python -m rag ARGV` with FakeEmbedder, embedding 100 chunks at a time so that a small corpus makes
# several batches. It notes every call of one watched method in NOTES and, on call STOP (1-based; 0 =
# never), writes "stopped" and waits there until NOTES.go exists, so a test can kill it at a known
# point, or let a second process run into the lock it holds.
CHILD = """
import os, sys, time
import rag.ingest
import rag.pipeline
from conftest import FakeEmbedder

rag.ingest._BATCH_CHUNKS = 100

notes, watch, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
owner, method, stop = watch.split(":")


class Embedder(FakeEmbedder):
    def __init__(self, *args, **kwargs):
        super().__init__()


def note(line):
    with open(notes, "a") as f:
        f.write(line + "\\n")


def watched(original):
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        note(f"{method} {calls}")
        if calls == int(stop):
            note("stopped")
            while not os.path.exists(notes + ".go"):
                time.sleep(0.02)
        return original(*args, **kwargs)

    return wrapper


if owner == "store":
    from rag.store import Store as cls
elif owner == "collection":
    from chromadb.api.models.Collection import Collection as cls
else:
    cls = Embedder
setattr(cls, method, watched(getattr(cls, method)))
rag.pipeline.SentenceTransformerEmbedder = Embedder
from rag.cli import main

sys.exit(main(argv))
"""


class Child:
    """A ``python -m rag`` process (see CHILD), its notes, and its output in files (a pipe could fill up)."""

    def __init__(self, folder: Path, watch: str, *argv) -> None:
        name = uuid.uuid4().hex[:8]
        self.notes = folder / f"{name}.notes"
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(self.notes), watch, *map(str, argv)],
                                         stdout=out, stderr=err, env=env, cwd=ROOT)

    def lines(self) -> list[str]:
        return self.notes.read_text().splitlines() if self.notes.exists() else []

    def wait_for(self, line: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"the child never reached {line!r}: {self.lines()}\n{self.err.read_text()[-3000:]}")
            time.sleep(0.005)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)  # kill -9: no cleanup, no finally blocks, no atexit
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def go(self) -> None:
        Path(f"{self.notes}.go").touch()

    def finish(self, timeout: float = 180) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.out.read_text(), self.err.read_text()


@pytest.fixture
def spawn(tmp_path):
    """``spawn(watch, *argv) -> Child``; a child still running when the test ends (it failed) is killed."""
    started: list[Child] = []

    def run(watch: str, *argv) -> Child:
        started.append(Child(tmp_path, watch, *argv))
        return started[-1]

    yield run
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()


def stories(first: int, count: int, prefix: str = "story", word: str = "item") -> dict[str, str]:
    """Articles of 20 sentences each (the title is one): ``count`` of them make ``20 * count`` chunks.

    Sentence i of story n mentions the made-up word ``{word}{n}x{i}``, found nowhere else.
    """
    return {
        f"{prefix}{n:03}.txt": f"Story {n}\n\n"
        + " ".join(f"Sentence {i} of story {n} mentions {word}{n}x{i}." for i in range(19)) + "\n"
        for n in range(first, first + count)
    }


def build(corpus: Path, index: Path) -> Store:
    config = Config(corpus=corpus, index=index)
    ingest(config, Store(config), FakeEmbedder())
    return Store(config)


QUESTIONS = ["Which sentence of story 3 mentions item3x4?", "Story 7 item7x12", "What does story 9 say about item9x2?"]


def answers(ask, retrieve=None) -> list:
    """What the questions get, without timings: answer text and citations, and the ranked sentences if
    ``retrieve`` is given. ``ask``/``retrieve`` are the engine's methods or calls to the app's API."""
    out = []
    for q in QUESTIONS:
        a = ask(q)
        a = a if isinstance(a, dict) else a.to_dict()
        out.append((a["answer"], a["abstained"], [(c["article_id"], c["sentence"], c["start"], c["end"]) for c in a["citations"]]))
        if retrieve:
            hits = retrieve(q)
            hits = hits["hits"] if isinstance(hits, dict) else [h.to_dict() for h in hits]
            out.append([(h["article_id"], h["sentence"], h["start"], h["score"]) for h in hits])
    return out


@pytest.fixture
def fake_cli(monkeypatch, capsys):
    """``fake_cli(*argv) -> (exit code, stderr)``: ``python -m rag`` in this process, with FakeEmbedder."""
    import rag.pipeline

    monkeypatch.setattr(rag.pipeline, "SentenceTransformerEmbedder", lambda *a, **k: FakeEmbedder())

    def run(*argv) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        return code, capsys.readouterr().err

    return run


@pytest.fixture
def mount():
    """``mount(target, *options)`` runs mount(8) and unmounts after the test; skips where mounting is not allowed."""
    done: list[Path] = []

    def run(target: Path, *options: str) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True) if shutil.which("mount") else None
        if r is None or r.returncode != 0:
            pytest.skip("a real full or read-only disk needs mount(8) with CAP_SYS_ADMIN, which this user lacks: "
                        + (r.stderr.strip() if r else "mount not installed"))
        if target not in done:
            done.append(target)
        return target

    yield run
    for target in reversed(done):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a ballast file until only ``leave`` bytes are free on ``disk`` (0 = until the kernel says ENOSPC)."""
    ballast = disk / f"ballast-{uuid.uuid4().hex[:6]}"
    block = b"\0" * 2**20
    with open(ballast, "wb") as f:
        try:
            while (free := shutil.disk_usage(disk).free) > leave:
                f.write(block[: max(4096, min(len(block), free - leave))])
                f.flush()
        except OSError:
            pass  # the disk is full
    return ballast


# --- kill -9 in the middle of an ingest ----------------------------------------------------------


def test_sigkill_mid_ingest_then_rerun_equals_a_clean_build(tmp_path, spawn):
    corpus = write_corpus(tmp_path / "corpus", stories(0, 15))  # 300 chunks: three batches of 100
    index = tmp_path / "killed"
    # Kill as soon as the second batch starts (it stops at the third at the latest): the first batch is
    # committed, and the kill lands wherever the process happens to be, embedding or inside Chroma's writes.
    child = spawn("embedder:embed:3", "ingest", "--corpus", corpus, "--index", index)
    child.wait_for("embed 2")
    child.kill()
    assert 0 < Store(Config(corpus=corpus, index=index)).chunks.count() < 300, "the kill should land mid-way"

    config = Config(corpus=corpus, index=index)
    rerun = ingest(config, Store(config), FakeEmbedder())
    assert (rerun.articles, rerun.chunks) == (15, 300)
    clean = build(corpus, tmp_path / "clean")
    store = Store(config)
    assert snapshot(store) == snapshot(clean)  # same ids, same count, same texts and vectors: no duplicates
    assert store.lexical.fingerprint() == clean.lexical.fingerprint()


@pytest.fixture(scope="module")
def changed_corpus(tmp_path_factory):
    """An index of 16 stories, and the corpus after 8 changed, 5 deleted and 2 added (with its clean build)."""
    tmp = tmp_path_factory.mktemp("changes")
    v1 = write_corpus(tmp / "v1", stories(0, 16))
    build(v1, tmp / "v1-index")
    v2 = write_corpus(tmp / "v2", {**stories(0, 8, word="thing"), **stories(8, 3), **stories(16, 2)})
    return tmp / "v1-index", v2, snapshot(build(v2, tmp / "v2-index"))


def chunk_texts(store: Store, article_id: str) -> list[str]:
    return store.chunks.get(where={"article_id": article_id}, include=["documents"])["documents"]


@pytest.mark.parametrize("watch, killed_state", [
    # Deleting: the 3rd deleted story's record is gone, its chunks are not.
    ("store:delete_chunks:3", lambda store: "story013.txt" not in store.manifest() and chunk_texts(store, "story013.txt")),
    # Updating: the 5th changed story's new chunks are in, its record still has the old content hash.
    ("collection:upsert:5", lambda store: "thing4x" in " ".join(chunk_texts(store, "story004.txt"))
     and store.library().articles["story004.txt"].text.count("item4x") == 19),
], ids=["mid-delete", "mid-update"])
def test_sigkill_while_changing_and_deleting_leaves_no_stale_sentences(tmp_path, spawn, changed_corpus, watch, killed_state):
    v1_index, v2, clean = changed_corpus
    index = tmp_path / "index"
    shutil.copytree(v1_index, index)  # a folder no Chroma client in this process has opened
    child = spawn(watch, "ingest", "--corpus", v2, "--index", index)
    child.wait_for("stopped")
    child.kill()
    config = Config(corpus=v2, index=index)
    assert killed_state(Store(config)), "the kill should leave the index half-changed"

    ingest(config, Store(config), FakeEmbedder())
    store = Store(config)
    assert snapshot(store) == clean
    # Spelled out, what the equality with the clean build implies: nothing deleted or replaced survives.
    deleted = {f"story{n:03}.txt" for n in range(11, 16)}
    chunks = store.chunks.get(include=["documents", "metadatas"])
    assert not deleted & {m["article_id"] for m in chunks["metadatas"]}
    assert not any("item" in d for d, m in zip(chunks["documents"], chunks["metadatas"])
                   if m["article_id"] < "story008"), "an old sentence of a changed story survived"
    assert store.lexical.fingerprint() == store.fingerprint()
    store.ensure_lexical()
    assert store.lexical.search("item5x3", 5) == []  # the old wording of changed story 5
    assert store.lexical.search("item13x3", 5) == []  # deleted story 13
    assert store.lexical.search("thing5x3", 5)


# --- two ingests at once ------------------------------------------------------------------------


def test_a_second_ingest_process_is_refused_with_a_clear_message_and_the_index_stays_intact(tmp_path, spawn):
    corpus = write_corpus(tmp_path / "corpus", stories(0, 10))
    index = tmp_path / "index"
    first = spawn("embedder:embed:1", "ingest", "--corpus", corpus, "--index", index)
    first.wait_for("stopped")  # mid-ingest, holding the lock
    code, _, err = spawn("embedder:embed:0", "ingest", "--corpus", corpus, "--index", index).finish()
    assert code == cli.EXIT_BUSY
    assert f"error: another ingest is running on this index ({index}); try again when it ends" in err
    assert "Traceback" not in err

    first.go()
    code, out, err = first.finish()
    assert code == 0, err
    assert "10 articles, 200 sentences" in out
    assert snapshot(Store(Config(corpus=corpus, index=index))) == snapshot(build(corpus, tmp_path / "clean"))


# --- the app: ingest while it serves ------------------------------------------------------------


@contextmanager
def served(desk: Newsdesk, *flags: str):
    """The real app over ``desk`` on a free loopback port, ``flags`` as on its command line; yields the URL."""
    import app as newsdesk_app

    args = newsdesk_app.parse_args(["--port", str(free_port()), *flags], environ={})
    demo = newsdesk_app.build_app(desk, max_upload_mb=args.max_upload_mb)
    url = newsdesk_app.serve(demo, args, blocked=[desk.config.corpus, desk.config.index])
    try:
        yield url
    finally:
        demo.close()


def upload(url: str, paths: list[Path]) -> httpx.Response:
    """POST files to Gradio's upload route, as the file picker does."""
    return httpx.post(url + "gradio_api/upload", files=[("files", (p.name, p.read_bytes())) for p in paths], timeout=60)


def uploaded(url: str, paths: list[Path]) -> list[dict]:
    r = upload(url, paths)
    r.raise_for_status()
    return [{"path": where, "orig_name": p.name, "meta": {"_type": "gradio.FileData"}} for where, p in zip(r.json(), paths)]


def add_to_corpus(url: str, files: list[dict]) -> dict:
    """Press "Add to corpus" as the browser does (it is not a public API): join the queue, read the event stream.

    Returns the final message: {"success": True, "output": {"data": [...]}} or {"success": False, "output": {"error": ...}}.
    """
    config = httpx.get(url + "config").json()
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "add_articles")
    session = uuid.uuid4().hex
    joined = httpx.post(url + "gradio_api/queue/join", json={
        "data": [files, [], "", ""], "fn_index": dep["id"], "session_hash": session, "event_data": None,
        "trigger_id": dep["targets"][0][0]})
    joined.raise_for_status()
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=300) as events:
        for line in events.iter_lines():
            if line.startswith("data:") and (msg := json.loads(line[5:])).get("msg") == "process_completed":
                return msg
    raise AssertionError("the event stream ended without a result")


def small_desk(tmp_path: Path, embedder=None, count: int = 10) -> Newsdesk:
    desk = Newsdesk(Config(corpus=write_corpus(tmp_path / "corpus", stories(0, count)), index=tmp_path / "index"),
                    embedder=embedder or FakeEmbedder())
    desk.ingest()
    return desk


ZEBRA = "When did the zebra escape from the city zoo?"


def test_questions_while_articles_are_added_all_get_answers_which_then_cite_the_new_article(tmp_path):
    desk = small_desk(tmp_path)
    new = write_corpus(tmp_path / "new", {**stories(100, 5, prefix="new"),  # 100 chunks: the ingest takes a while
                                          "zebra.txt": "Zoo news\nThe zebra escaped from the city zoo on Monday morning."})
    with served(desk) as url:
        client = Client(url, verbose=False)
        before = answers(lambda q: client.predict(question=q, api_name="/ask"))
        assert client.predict(question=ZEBRA, api_name="/ask")["abstained"]
        files = uploaded(url, sorted(new.iterdir()))

        asked, errors, stop = [], [], threading.Event()

        def keep_asking():
            own = Client(url, verbose=False)
            while not stop.is_set():
                for q in (QUESTIONS[0], ZEBRA):
                    sent = time.monotonic()
                    try:
                        asked.append((sent, time.monotonic(), q, own.predict(question=q, api_name="/ask")))
                    except Exception as e:  # any failure at all is what this test is about
                        errors.append(e)

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            while not asked and not errors:
                time.sleep(0.05)
            started = time.monotonic()
            result = add_to_corpus(url, files)
            ended = time.monotonic()
        finally:
            stop.set()
            asker.join(timeout=120)

        assert result["success"], result
        assert errors == []
        assert any(sent < ended and done > started for sent, done, *_ in asked), "no question overlapped the ingest"
        for _, _, q, a in asked:
            if q == QUESTIONS[0]:
                assert answers(lambda _: a)[0] == before[0]  # the old articles answer as before, during and after
        zebra = [a for _, _, q, a in asked if q == ZEBRA]
        cited = [bool(a["citations"]) and a["citations"][0]["article_id"] == "zebra.txt" for a in zebra]
        assert cited == sorted(cited), "once an answer cites the new article, later ones do too"
        assert all(a["abstained"] or c for a, c in zip(zebra, cited))
        assert client.predict(question=ZEBRA, api_name="/ask")["citations"][0]["article_id"] == "zebra.txt"


# --- a full disk, a read-only index, a file in the way --------------------------------------------


def test_full_disk_refuses_the_ingest_up_front_and_the_index_answers_as_before(tmp_path, mount, fake_cli):
    disk = mount(tmp_path / "disk", "-t", "tmpfs", "-o", "size=64m", "tmpfs")
    desk = small_desk(disk)  # corpus and index on the small disk
    before, held = answers(desk.ask), snapshot(desk.store)
    write_corpus(desk.config.corpus, stories(100, 5, prefix="new"))
    ballast = fill(disk, leave=2 * 2**20)

    code, err = fake_cli("ingest", "--corpus", desk.config.corpus, "--index", desk.config.index)
    assert code == cli.EXIT_INDEX_FAILED
    assert f"error: not enough disk space for the index at {desk.config.index}" in err
    assert "Nothing was changed" in err and "Traceback" not in err
    again = Newsdesk(desk.config, embedder=FakeEmbedder())
    assert snapshot(again.store) == held
    assert answers(again.ask) == before

    ballast.unlink()
    assert fake_cli("ingest", "--corpus", desk.config.corpus, "--index", desk.config.index)[0] == 0
    assert snapshot(Store(desk.config)) == snapshot(build(desk.config.corpus, tmp_path / "clean"))


class FillsTheDisk(FakeEmbedder):
    """Once armed, fills ``disk`` right before its second embedding call, as another program writing there would."""

    def __init__(self, disk: Path) -> None:
        super().__init__()
        self.disk, self.armed_at = disk, None

    def embed(self, texts, progress=False):
        if self.armed_at is not None and self.calls == self.armed_at + 1:
            self.ballast = fill(self.disk)
        return super().embed(texts)


def test_disk_filling_up_during_an_upload_is_a_clear_error_and_the_app_answers_as_before(tmp_path, mount, monkeypatch):
    monkeypatch.setattr("rag.ingest._BATCH_CHUNKS", 100)  # so that a few articles make several batches
    disk = mount(tmp_path / "disk", "-t", "tmpfs", "-o", "size=64m", "tmpfs")
    embedder = FillsTheDisk(disk)
    desk = Newsdesk(Config(corpus=write_corpus(tmp_path / "corpus", stories(0, 10)), index=disk / "index"),
                    embedder=embedder)
    desk.ingest()
    # The new articles sort before the old ones: a half-done ingest shifts every old sentence's BM25 number.
    new = write_corpus(tmp_path / "new", stories(100, 8, prefix="new"))  # two batches
    with served(desk) as url:
        client = Client(url, verbose=False)
        ask = lambda q: client.predict(question=q, api_name="/ask")  # noqa: E731
        retrieve = lambda q: client.predict(question=q, k=10, api_name="/retrieve")  # noqa: E731
        before = answers(ask)
        files = uploaded(url, sorted(new.iterdir()))
        embedder.armed_at = embedder.calls
        result = add_to_corpus(url, files)
        assert not result["success"]
        error = result["output"]["error"]
        assert f"could not write the index at {disk / 'index'}: the disk is full" in error
        with pytest.warns(RuntimeWarning, match="using it from memory"):  # BM25 follows the half-changed index
            assert answers(ask) == before
            # and ranks exactly as an engine started afresh on the index as it now is
            restarted = Newsdesk(desk.config, embedder=FakeEmbedder())
            assert answers(ask, retrieve) == answers(restarted.ask, restarted.retrieve)
        assert client.predict(api_name="/stats")["articles"] >= 10

    embedder.ballast.unlink()
    embedder.armed_at = None
    desk.ingest()  # the files were copied into the corpus: running ingest again finishes the job
    assert snapshot(desk.store) == snapshot(build(desk.config.corpus, tmp_path / "clean"))


def test_read_only_index_is_a_clear_error_and_still_serves(tmp_path, mount, fake_cli):
    desk = small_desk(tmp_path)
    before = answers(desk.ask)
    read_only = mount(tmp_path / "read-only", "--bind", str(desk.config.index))
    mount(read_only, "-o", "remount,bind,ro")
    write_corpus(desk.config.corpus, stories(100, 3, prefix="new"))

    code, err = fake_cli("ingest", "--corpus", desk.config.corpus, "--index", read_only)
    assert code == cli.EXIT_INDEX_FAILED
    assert f"error: could not write the index at {read_only}: the file system is read-only" in err

    with pytest.warns(RuntimeWarning, match="is read-only: serving a copy"):
        served_desk = Newsdesk(Config(corpus=desk.config.corpus, index=read_only), embedder=FakeEmbedder())
        assert answers(served_desk.ask) == before
    with served(served_desk) as url:
        client = Client(url, verbose=False)
        assert answers(lambda q: client.predict(question=q, api_name="/ask")) == before
        result = add_to_corpus(url, uploaded(url, [desk.config.corpus / "new100.txt"]))
        assert not result["success"] and "the file system is read-only" in result["output"]["error"]


def test_index_path_blocked_by_a_file_is_a_clear_error(tmp_path, fake_cli):
    corpus = write_corpus(tmp_path / "corpus", stories(0, 2))
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code, err = fake_cli("ingest", "--corpus", corpus, "--index", tmp_path / "notes.txt" / "index")
    assert code == cli.EXIT_INDEX_FAILED
    assert f"could not write the index at {tmp_path / 'notes.txt' / 'index'}: a file is in the way" in err


# --- exposure: who can reach what ---------------------------------------------------------------


def test_listening_beyond_this_machine_without_a_login_warns_loudly(tmp_path, capsys):
    import app as newsdesk_app

    assert newsdesk_app.parse_args([], environ={}).host == "127.0.0.1"
    for host in ("127.0.0.1", "127.0.0.5", "::1", "localhost"):
        assert newsdesk_app.exposure_warning(host, 7860, None) is None
    for host in ("0.0.0.0", "::", "192.168.1.20", "newsdesk.example.org"):
        assert "WITHOUT A LOGIN" in newsdesk_app.exposure_warning(host, 7860, None)
        assert newsdesk_app.exposure_warning(host, 7860, [("editor", "s3cret")]) is None

    desk = small_desk(tmp_path, count=2)
    capsys.readouterr()
    with served(desk, "--host", "0.0.0.0"):
        err = capsys.readouterr().err
    assert "WARNING: Newsdesk is listening on 0.0.0.0:" in err and "WITHOUT A LOGIN" in err
    assert "--auth user:password" in err and err.count("!" * 78) == 2  # a banner, on stderr
    with served(desk, "--host", "0.0.0.0", "--auth", "editor:s3cret"):
        err = capsys.readouterr().err
    assert "WARNING" not in err and "HTTPS" in err
    with served(desk):
        assert "WARNING" not in capsys.readouterr().err


AUTH = ("editor", "s3cret")
FERRY = "Ferry strike ends\nThe harbour ferry strike ended on Tuesday after a pay deal. Boats ran again at noon."
CALLS = {  # every named API endpoint, with arguments it accepts
    "ask": [QUESTIONS[0], None, None],
    "retrieve": [QUESTIONS[0], 3, None],
    "article": ["ferry.txt"],
    "stats": [],
    "embed": [["a harbour ferry"]],
}
# Routes that answer without the login, and why that is fine: none returns an article, an answer, the
# API description or a file. Any other route must refuse (401/403); a new Gradio route lands here only
# after someone has looked at it.
PUBLIC = {
    "/": "the login page (checked: no article in it)",
    "/gradio_api/runs": "the login page again (Gradio's run-history page)",
    "/login": "signing in",
    "/logout": "signing out",
    "/openapi.json": "FastAPI's list of Gradio's generic routes (checked: no endpoint of ours in it)",
    "/assets/{path}": "the front end's files",
    "/static/{path}": "the front end's files",
    "/svelte/{path}": "the front end's files",
    "/favicon.ico": "the front end's files",
    "/theme.css": "the front end's files",
    "/gradio_api/theme.css": "the front end's files",
    "/robots.txt": "the front end's files",
    "/manifest.json": "the front end's files",
    "/pwa_icon": "the front end's files",
    "/pwa_icon/{size}": "the front end's files",
    "/gradio_api/custom_component/{id}/{environment}/{type}/{file_name}": "the front end's files",
    "/gradio_api/user": "who is signed in: nobody",
    "/gradio_api/token": "who is signed in: nobody",
    "/gradio_api/app_id": "the app's random id",
    "/gradio_api/startup-events": "runs the app's startup events (it has none)",
    "/gradio_api/heartbeat/{session_hash}": "acts on a session id only a signed-in caller was given",
    "/gradio_api/cancel": "acts on a session and event id only a signed-in caller was given",
    "/gradio_api/reset": "does nothing",
    "/gradio_api/stream/{event_id}": "acts on an event id only a signed-in caller was given",
    "/gradio_api/stream/{event_id}/close": "acts on an event id only a signed-in caller was given",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8": "media streams of a session (there are none)",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}": "media streams of a session (there are none)",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file": "media streams of a session (there are none)",
    "/monitoring/{key}": "needs the monitoring key, and monitoring is off",
    "/gradio_api/vibe-edit": "Gradio's vibe editor, off unless launched with --vibe",
    "/gradio_api/undo-vibe-edit": "Gradio's vibe editor, off unless launched with --vibe",
    "/gradio_api/vibe-code": "Gradio's vibe editor, off unless launched with --vibe",
    "/gradio_api/vibe-starter-queries": "Gradio's vibe editor, off unless launched with --vibe",
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The app with a login, over two stories and a ferry article; yields (url, desk)."""
    tmp = tmp_path_factory.mktemp("guarded")
    corpus = write_corpus(tmp / "corpus", {**stories(0, 2), "ferry.txt": FERRY})
    desk = Newsdesk(Config(corpus=corpus, index=tmp / "index"), embedder=FakeEmbedder())
    desk.ingest()
    with served(desk, "--auth", ":".join(AUTH)) as url:
        yield url, desk


def signed_in(url: str) -> httpx.Client:
    session = httpx.Client(base_url=url, timeout=60)
    assert session.post("login", data={"username": AUTH[0], "password": AUTH[1]}).status_code == 200
    return session


def test_with_a_login_every_endpoint_refuses_callers_without_it(guarded):
    from gradio_client.exceptions import AuthenticationError

    url, desk = guarded
    corpus_file = desk.config.corpus / "ferry.txt"
    stats_fn = next(d["id"] for d in signed_in(url).get("config").json()["dependencies"] if d.get("api_name") == "stats")
    anonymous = httpx.Client(base_url=url, timeout=10)

    def refused(r: httpx.Response) -> bool:
        return r.status_code == 401 and "Not authenticated" in r.text

    for path in ["config", "gradio_api/info", "gradio_api/openapi.json", f"gradio_api/file={corpus_file}",
                 "gradio_api/file=/etc/passwd", "gradio_api/queue/data?session_hash=x", "gradio_api/queue/status"]:
        assert refused(anonymous.get(path)), path
    for name, data in CALLS.items():
        for route in ("call", "call/v2", "run", "api"):
            assert refused(anonymous.post(f"gradio_api/{route}/{name}", json={"data": data})), (route, name)
    assert refused(anonymous.post("gradio_api/queue/join", json={"data": [], "fn_index": stats_fn, "session_hash": "x"}))
    assert refused(anonymous.post("gradio_api/upload", files=[("files", ("new.txt", FERRY.encode()))]))
    with pytest.raises((AuthenticationError, ValueError)):
        Client(url, verbose=False)

    # Every other route, as FastAPI lists them: refused, unless PUBLIC says why it may answer.
    routes = anonymous.get("openapi.json").json()["paths"]
    for path, methods in routes.items():
        if path.rstrip("/") in PUBLIC or path in PUBLIC:
            continue
        concrete = path.replace("{api_name}", "stats").replace("{path_or_url}", "/etc/passwd")
        for method in set(methods) - {"head"}:
            r = anonymous.request(method.upper(), re.sub(r"\{[^}]+\}", "x", concrete).lstrip("/"), json={})
            assert r.status_code in (401, 403), (
                f"{method.upper()} {path} answered {r.status_code} without the login: {r.text[:200]!r}. "
                "If that is harmless, add it to PUBLIC with the reason.")

    page = anonymous.get("").text
    assert '"auth_required":true' in page
    assert "harbour ferry" not in page and "item0x1" not in page
    assert not {"/ask", "/retrieve", "/article"} & set(routes)


def test_with_a_login_every_endpoint_answers_once_signed_in(guarded):
    url, _ = guarded
    session = signed_in(url)
    for path in ("config", "gradio_api/info"):
        assert session.get(path).status_code == 200, path
    for name, data in CALLS.items():
        event = session.post(f"gradio_api/call/{name}", json={"data": data})
        assert event.status_code == 200, name
        assert "event: complete" in session.get(f"gradio_api/call/{name}/{event.json()['event_id']}").text, name
    assert session.post("gradio_api/upload", files=[("files", ("new.txt", FERRY.encode()))]).status_code == 200

    client = Client(url, auth=AUTH, verbose=False)
    assert client.predict(question=QUESTIONS[0], api_name="/ask")["citations"]
    assert client.predict(question=QUESTIONS[0], k=3, api_name="/retrieve")["hits"]
    assert client.predict(article_id="ferry.txt", api_name="/article")["text"] == FERRY
    assert client.predict(api_name="/stats")["articles"] == 3
    assert len(client.predict(texts=["a harbour ferry"], api_name="/embed")[0]) == 384


def test_uploads_are_size_limited_and_type_checked(tmp_path):
    desk = small_desk(tmp_path, count=2)
    corpus = desk.config.corpus
    held = sorted(p.name for p in corpus.iterdir())
    folder = tmp_path / "to-upload"
    big = write_corpus(folder, {"big.txt": "Big story\n" + "A sentence about the harbour. " * 40_000}) / "big.txt"
    exe = write_corpus(folder, {"tool.exe": b"MZ\x90\x00\x03" + bytes(range(256)) * 8}) / "tool.exe"
    with served(desk, "--max-upload-mb", "1") as url:
        r = upload(url, [big])
        assert r.status_code == 413 and "maximum allowed size of 1048576 bytes" in r.text

        result = add_to_corpus(url, uploaded(url, [exe]))
        assert not result["success"]
        assert "Invalid file type" in result["output"]["error"] and ".txt" in result["output"]["error"]

        # A file the caller did not upload (a server path) is refused before the app sees it.
        for path in ("/etc/passwd", str(corpus / "story000.txt")):
            forged = [{"path": path, "orig_name": "passwd.txt", "meta": {"_type": "gradio.FileData"}}]
            assert not add_to_corpus(url, forged)["success"]
        assert sorted(p.name for p in corpus.iterdir()) == held

        small = write_corpus(folder, {"harbour.txt": FERRY}) / "harbour.txt"
        assert add_to_corpus(url, uploaded(url, [small]))["success"]
        assert "harbour.txt" in {p.name for p in corpus.iterdir()}


def test_the_api_reads_nothing_outside_the_corpus_and_index(tmp_path):
    desk = small_desk(tmp_path, count=2)
    corpus, index = desk.config.corpus, desk.config.index
    with served(desk) as url:
        client = Client(url, verbose=False)
        for hostile in ("../../etc/passwd", "/etc/passwd", "story000.txt/../../../../etc/passwd",
                        str(corpus / "story000.txt"), str(index / "chroma.sqlite3")):
            with pytest.raises(AppError, match="No article with id"):
                client.predict(article_id=hostile, api_name="/article")
        assert client.predict(article_id="story000.txt", api_name="/article")["id"] == "story000.txt"

        for path in ("/etc/passwd", corpus / "story000.txt", index / "chroma.sqlite3", ROOT / "app.py", "app.py",
                     "corpus/" + next(p.name for p in (ROOT / "corpus").iterdir()), "../../../../etc/passwd"):
            r = httpx.get(f"{url}gradio_api/file={path}")
            assert r.status_code in (403, 404) and "root:" not in r.text, (path, r.status_code)


def test_questions_beyond_the_queue_are_turned_away_and_the_rest_answered(tmp_path):
    from rag.answer import Draft

    running, release = threading.Event(), threading.Event()

    class Slow:
        """An answerer that holds the one worker until the test lets it go."""

        def answer(self, question, hits):
            running.set()
            release.wait(timeout=120)
            return Draft(abstained=True)

    desk = small_desk(tmp_path, count=2)
    desk.answerer = Slow()
    with served(desk, "--concurrency", "1", "--queue-size", "1") as url:
        http = httpx.Client(base_url=url, timeout=60)
        ask = lambda: http.post("gradio_api/call/ask", json={"data": [QUESTIONS[0], None, None]})  # noqa: E731
        first = ask()
        assert running.wait(timeout=60)  # the one worker is busy with the first question
        second, third = ask(), ask()  # the second waits in the queue, which is then full
        assert (first.status_code, second.status_code) == (200, 200)
        assert third.status_code == 503 and "Queue is full" in third.text
        release.set()
        for r in (first, second):
            assert "event: complete" in http.get(f"gradio_api/call/ask/{r.json()['event_id']}").text


def test_readme_guarantees_name_tests_that_exist():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Guarantees and limits", 1)[1]
    named = set(re.findall(r"`(?:tests/(test_\w+)\.py::)?(test_\w+)`", section))
    assert len(named) >= 10
    for module, name in named:
        source = (ROOT / "tests" / f"{module or 'test_faults'}.py").read_text(encoding="utf-8")
        assert f"def {name}(" in source, f"README names {module or 'test_faults'}::{name}, which does not exist"
