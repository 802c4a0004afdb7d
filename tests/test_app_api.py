"""The app's API as programs use it: gradio_client (and @gradio/client) against the real app on loopback.

The app is started once for the module, as ``python app.py --port N --corpus <copy> --index <tmp>``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from html import escape

import numpy as np
import pytest
from app_server import ROOT, AppProcess
from conftest import SHIPPED, FakeEmbedder, free_port, write_corpus

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # app.py and ui_render.py live at the top of the repository

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

QUESTION = "Why did Amazon close its Shanghai lab?"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    corpus = write_corpus(tmp / "corpus", {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()})
    with AppProcess(corpus, tmp / "index", free_port(), tmp / "app.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


def ask(client, question, history=None, filters=None) -> dict:
    return client.predict(question=question, history=history, filters=filters, api_name="/ask")


def assert_offsets_slice_articles(client, items, key="sentence"):
    for it in items:
        article = client.predict(article_id=it["article_id"], api_name="/article")
        assert article["text"][it["start"]:it["end"]] == it[key]


def test_ask_returns_citations_whose_offsets_slice_the_article(client):
    answer = ask(client, QUESTION)
    assert not answer["abstained"]
    assert answer["citations"], answer
    assert_offsets_slice_articles(client, answer["citations"])
    for c in answer["citations"]:
        assert f"[{c['n']}]" in answer["answer"]  # every citation is marked in the answer text
    # The same JSON as `python -m rag ask --json` (Answer.to_dict()).
    from rag.types import Answer

    assert set(answer) == set(Answer("q", "q", (), (), True).to_dict())


def test_follow_up_is_read_in_the_light_of_the_conversation(client):
    first = ask(client, QUESTION)
    follow = "When was it established?"
    answer = ask(client, follow, history=[[first["question"], first["answer"]]])
    assert "shanghai" not in follow.lower()
    assert "shanghai" in answer["standalone_question"].lower()
    # History given as chat messages means the same.
    messages = [{"role": "user", "content": first["question"]}, {"role": "assistant", "content": first["answer"]}]
    assert ask(client, follow, history=messages)["standalone_question"] == answer["standalone_question"]


def test_abstains_when_the_articles_do_not_say(client):
    answer = ask(client, "What is the population of Brazil?")
    assert answer["abstained"] is True
    assert answer["citations"] == []
    assert "don't say" in answer["answer"]


def test_filters_restrict_what_is_searched(client):
    assert ask(client, QUESTION, filters={"sources": ["No Such Paper"]})["abstained"] is True
    article_id = sorted(p.name for p in SHIPPED.iterdir() if p.is_file())[-1]
    hits = client.predict(question="Shanghai", k=5, filters={"article_ids": [article_id]}, api_name="/retrieve")["hits"]
    assert hits and {h["article_id"] for h in hits} == {article_id}


def test_retrieve_ranks_sentences_with_exact_offsets(client):
    result = client.predict(question="Shanghai lab closure", k=3, api_name="/retrieve")
    hits = result["hits"]
    assert 1 <= len(hits) <= 3
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert_offsets_slice_articles(client, hits)


def test_article_and_stats_describe_the_index(client):
    ids = sorted(p.name for p in SHIPPED.iterdir() if p.is_file())
    stats = client.predict(api_name="/stats")
    assert stats["articles"] == len(ids)
    total = 0
    for article_id in ids:
        article = client.predict(article_id=article_id, api_name="/article")
        assert article["id"] == article_id
        spans = [(s["start"], s["end"]) for s in article["sentences"]]
        assert spans == sorted(spans) and all(0 <= a < b <= len(article["text"]) for a, b in spans)
        total += len(spans)
    assert stats["sentences"] == total


def test_embed_returns_the_engines_unit_vectors(client, real_embedder):
    texts = ["Amazon closed its AI lab in Shanghai.", "The harbour ferry strike ended on Tuesday."]
    vectors = np.array(client.predict(texts=texts, api_name="/embed"))
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors, real_embedder.embed(texts), atol=1e-4)


def test_bad_requests_get_clear_errors_and_the_app_keeps_serving(app, client):
    from gradio_client.exceptions import AppError

    cases = [
        (dict(question="", api_name="/ask"), "empty"),
        (dict(question="x" * 100_000, api_name="/ask"), "limit"),
        (dict(question=QUESTION, filters={"publisher": "x"}, api_name="/ask"), "unknown filter"),
        (dict(question=QUESTION, history="not a list", api_name="/ask"), "history"),
        (dict(question="Shanghai", k=0, api_name="/retrieve"), "k must be"),
        (dict(article_id="no-such-article.txt", api_name="/article"), "No article"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(AppError, match=expected):
            client.predict(**kwargs)
    assert app.alive()
    assert client.predict(api_name="/stats")["articles"] > 0
    assert ask(client, QUESTION)["citations"]


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using the app and its API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_client_example_runs_as_written(app, tmp_path):
    code = readme_python_example()
    assert "http://127.0.0.1:7860/" in code
    script = tmp_path / "example.py"
    script.write_text(code.replace("http://127.0.0.1:7860/", app.url))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("384")


def test_web_component_script_is_served_by_the_app(app):
    # <script src=".../gradio.js"> must work without a CDN: the loader and the bundle it imports come from the app.
    loader = urllib.request.urlopen(app.url + "gradio.js").read().decode()
    bundle = re.search(r"\./(assets/[\w.-]+\.js)", loader).group(1)
    with urllib.request.urlopen(app.url + bundle) as r:
        assert r.status == 200 and "javascript" in r.headers["content-type"]


def test_js_client_example_asks_the_app(app, client, tmp_path):
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not installed: the JavaScript client example cannot run")
    example = ROOT / "examples" / "js-client"
    for name in ("package.json", "package-lock.json", "ask.mjs"):
        shutil.copy(example / name, tmp_path / name)
    install = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"could not install @gradio/client from npm: {install.stderr.strip()[-300:]}")
    run = subprocess.run([node, "ask.mjs", QUESTION, app.url], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["question"] == QUESTION and answer["citations"]
    assert_offsets_slice_articles(client, answer["citations"])


# --- in-process: login, streaming, and HTML escaping (no model needed) -------------------------


@pytest.fixture(scope="module")
def small_desk(tmp_path_factory):
    """A real engine with the fake embedder over two small articles, and an answerer that streams."""
    from rag.answer import Draft
    from rag.config import Config
    from rag.pipeline import Newsdesk

    class StreamingAnswerer:
        """Streams two pieces, then answers with the top hit's sentence (as an LLM answerer would)."""

        def answer(self, question, hits):
            return Draft(sentences=[(hits[0].text, [0])]) if hits else Draft(abstained=True)

        def stream(self, question, hits):
            yield "The harbour "
            if "crash" in question:
                raise RuntimeError("the LLM server went away")
            yield "ferry strike…"
            yield self.answer(question, hits)

    tmp = tmp_path_factory.mktemp("small")
    corpus = write_corpus(tmp / "corpus", {
        "ferry.txt": "Ferry strike ends\nThe harbour ferry strike ended on Tuesday after a pay deal. Boats ran again at noon.",
        "markup.txt": "Council notes\nThe council met <script>alert(1)</script> and approved <b>the budget</b>.",
    })
    desk = Newsdesk(Config(corpus=corpus, index=tmp / "index"), embedder=FakeEmbedder(), answerer=StreamingAnswerer())
    desk.ingest()
    return desk


def test_login_is_required_when_auth_is_set(small_desk):
    from gradio_client.exceptions import AuthenticationError

    import app as newsdesk_app

    port = free_port()
    args = newsdesk_app.parse_args(["--port", str(port)], environ={"NEWSDESK_AUTH": "editor:s3cret"})
    assert args.host == "127.0.0.1" and args.auth == [("editor", "s3cret")]
    with pytest.raises(SystemExit):
        newsdesk_app.parse_args(["--auth", "no-colon"], environ={})
    demo = newsdesk_app.build_app(small_desk)
    url = newsdesk_app.serve(demo, args)
    try:
        with pytest.raises((AuthenticationError, ValueError)):
            Client(url, verbose=False)
        with pytest.raises((AuthenticationError, ValueError)):
            Client(url, auth=("editor", "wrong"), verbose=False)
        assert Client(url, auth=("editor", "s3cret"), verbose=False).predict(api_name="/stats")["articles"] == 2
    finally:
        demo.close()


def test_chat_streams_the_answer_then_shows_it_with_citations(small_desk):
    import app as newsdesk_app

    ui = newsdesk_app.NewsdeskUI(small_desk)
    steps = list(ui.respond("When did the ferry strike end?", [], [], [], "", ""))
    shown = [messages[-1]["content"] for messages, *_ in steps]
    assert "Searching" in shown[0]
    assert "The harbour " in shown[1] and "The harbour ferry strike…" in shown[2]  # pieces appear as they come
    messages, answers, sources, _ = steps[-1]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert len(answers) == 1 and answers[0].citations
    assert 'href="#cite-0-1"' in messages[-1]["content"]  # a clickable marker for citation 1 of turn 0
    first = answers[0].citations[0]
    assert f'<mark class="nd-current">{escape(first.sentence)}</mark>' in sources  # highlighted in its article
    assert f'data-article="{first.article_id}"' in sources


def test_bad_question_in_the_chat_is_an_error_and_loses_nothing(small_desk):
    import gradio as gr

    import app as newsdesk_app

    ui = newsdesk_app.NewsdeskUI(small_desk)
    with pytest.raises(gr.Error, match="empty"):
        next(ui.respond("   ", [], [], [], "", ""))
    with pytest.raises(gr.Error, match="YYYY-MM-DD"):
        next(ui.respond("When did the ferry strike end?", [], [], [], "last tuesday", ""))


def test_an_engine_failure_mid_answer_is_reported_and_the_question_kept(small_desk):
    import gradio as gr

    import app as newsdesk_app

    ui = newsdesk_app.NewsdeskUI(small_desk)
    earlier = [{"role": "user", "content": "<div>Earlier?</div>"}, {"role": "assistant", "content": "Earlier."}]
    steps = []
    with pytest.raises(gr.Error, match="LLM server went away"):
        for step in ui.respond("Will the ferry crash?", earlier, [], [], "", ""):
            steps.append(step)
    messages, answers, _, question_box = steps[-1]
    assert messages == earlier and answers == []  # the failed turn is gone, the conversation intact
    assert question_box == "Will the ferry crash?"  # and the question is back in the box


def test_article_markup_is_escaped_everywhere(small_desk):
    from ui_render import answer_html, sources_html

    import app as newsdesk_app

    ui = newsdesk_app.NewsdeskUI(small_desk)
    answer = small_desk.ask("What did the council approve?")
    assert answer.citations and answer.citations[0].article_id == "markup.txt"
    panel = sources_html(answer, 0, 1, small_desk.article("markup.txt"))
    chat = answer_html(answer, 0)
    for html in (panel, chat):
        assert "<script" not in html and "<b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert ui.render_sources(answer, 0, 1) == panel


def test_related_sentences_are_listed_after_the_citations_and_never_marked_as_support(small_desk):
    import app as newsdesk_app

    ui = newsdesk_app.NewsdeskUI(small_desk)
    answer = small_desk.ask("When did the ferry strike end?")
    assert answer.citations and answer.related
    n_related = len(answer.citations) + 1  # related cards are numbered on from the citations
    panel = ui.render_sources(answer, 0, n_related)
    assert panel.count("related, not cited") == len(answer.related)
    assert f'data-cite="0-{n_related}"' in panel
    first = answer.related[0]
    assert f'<mark class="nd-current">{escape(first.text)}</mark>' in panel  # highlighted in its article...
    assert 'class="nd-article nd-related"' in panel  # ...in the grey of related material, not support
    cited_panel = ui.render_sources(answer, 0, 1)
    assert 'class="nd-article"' in cited_panel and "nd-article nd-related" not in cited_panel
    beside = [h for h in answer.related if h.article_id == answer.citations[0].article_id]
    assert beside, "the test needs a related sentence in the cited article"
    assert all(escape(h.text) in cited_panel and f'<mark class="nd-other">{escape(h.text)}</mark>' not in cited_panel
               for h in beside)  # shown in the article, not marked like a citation
    from ui_render import answer_html

    assert f'href="#cite-0-{n_related}"' not in answer_html(answer, 0)  # the chat marks citations only
