"""Newsdesk in the browser: a chat over the news corpus, its sources and corpus panels, and a Gradio API.

    python app.py [--corpus DIR] [--index DIR] [--host 127.0.0.1] [--port 7860] [--auth user:pass] [--llm ...]

Flags have NEWSDESK_* environment equivalents (NEWSDESK_CORPUS, NEWSDESK_HOST, NEWSDESK_PORT,
NEWSDESK_AUTH, ...). It listens on 127.0.0.1 unless told otherwise, and warns loudly when told to
listen beyond this machine without a login. This file only wires the engine
(``rag.pipeline.Newsdesk``) to the UI and the API; the HTML comes from ``ui_render``.
"""

import argparse
import ipaddress
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from html import escape
from pathlib import Path

import gradio as gr

from rag.cli import add_config_flags, add_llm_flags, config_from
from rag.config import Config
from rag.entities import TaggerUnavailable
from rag.ingest import IngestBusy, IngestFailed
from rag.pipeline import BadQuestion, Newsdesk, check_filters
from rag.types import Answer
from ui_render import (CSS, SOURCES_JS, answer_html, corpus_html, filters_line, ingest_html, sources_html,
                       sources_items, streaming_html)

ROOT = Path(__file__).resolve().parent
UPLOAD_TYPES = [".txt", ".md", ".json", ".jsonl", ".html"]
DEFAULT_MAX_UPLOAD_MB = Config.max_file_bytes // 2**20  # per file: the engine's own limit on any article file


class ReadWriteLock:
    """Questions run side by side; adding articles waits for them and runs alone (it rewrites the index)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    @contextmanager
    def read(self):
        with self._cond:
            # Waiting writers go first, so a steady stream of questions cannot starve an upload.
            self._cond.wait_for(lambda: not self._writing and not self._waiting_writers)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self):
        with self._cond:
            self._waiting_writers += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def _history_pairs(history) -> list[tuple[str, str]]:
    """Earlier turns as (question, answer) pairs; accepts pairs or chat messages ({"role", "content"})."""
    if not history:
        return []
    if not isinstance(history, list):
        raise gr.Error("history must be a list of [question, answer] pairs.")
    if all(isinstance(m, dict) for m in history):
        pairs, question = [], None
        for m in history:
            if m.get("role") == "user":
                question = str(m.get("content", ""))
            elif m.get("role") == "assistant" and question is not None:
                pairs.append((question, str(m.get("content", ""))))
                question = None
        return pairs
    if all(isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history):
        return [tuple(t) for t in history]
    raise gr.Error('history must be a list of [question, answer] pairs or of {"role", "content"} messages.')


def _ui_filters(sources, date_from, date_to) -> dict:
    """The sidebar's filter fields as an engine filters dict; the engine's check makes a bad date a clear error."""
    filters = {"sources": list(sources)} if sources else {}
    for key, value in (("date_from", date_from), ("date_to", date_to)):
        if (value or "").strip():
            filters[key] = value.strip()
    try:
        check_filters(filters)
    except BadQuestion as e:
        raise gr.Error(str(e)) from None
    return filters


def default_examples(desk: Newsdesk, corpus: Path, limit: int = 4) -> list[str]:
    """Example questions: the shipped list for the shipped corpus, else prompts built from recent titles."""
    shipped = ROOT / "examples" / "questions.txt"
    if corpus.resolve() == (ROOT / "corpus").resolve() and shipped.is_file():
        return load_examples(shipped)
    titles = [a.title.split(":")[0].strip() for a in desk.articles() if a.title]
    return [f"What do the articles say about “{t}”?" for t in titles[:limit]]


def load_examples(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


class NewsdeskUI:
    """The app's event handlers and API functions over one engine; ``build_app`` wires them to components."""

    # Bad input (an empty question, an unknown filter): its message is shown to the user as it is.
    user_errors = (BadQuestion, ValueError)

    def __init__(self, desk: Newsdesk) -> None:
        self.desk = desk
        self.guard = ReadWriteLock()

    def render_sources(self, answer: Answer | None, turn: int, n: int) -> str:
        article = None
        if answer is not None:
            item = next((it for it in sources_items(answer) if it["n"] == n), None)
            if item:
                with self.guard.read():
                    try:
                        article = self.desk.article(item["article_id"])
                    except KeyError:
                        article = None  # removed from the corpus since the answer was given
        return sources_html(answer, turn, n, article)

    # --- the chat ------------------------------------------------------------------------

    def respond(self, question, messages, answers, srcs, date_from, date_to):
        """Answer in the chat: yields (messages, answers, sources panel, question box) as the answer grows."""
        filters = _ui_filters(srcs, date_from, date_to)
        try:
            question = self.desk.check_question(question)
        except self.user_errors as e:
            raise gr.Error(str(e)) from None
        turn = len(answers)
        history = [(a.question, a.text) for a in answers]
        messages = list(messages or []) + [{"role": "user", "content": f"<div>{escape(question)}</div>"}]
        thinking = {"role": "assistant", "content": streaming_html("Searching the articles…")}
        yield messages + [thinking], answers, gr.skip(), ""
        answer, text, failure = None, "", None
        with self.guard.read():
            try:
                for piece in self.desk.ask_stream(question, history=history, filters=filters):
                    if isinstance(piece, str):
                        text += piece
                        streaming = {"role": "assistant", "content": streaming_html(text)}
                        yield messages + [streaming], answers, gr.skip(), gr.skip()
                    else:
                        answer = piece
            except self.user_errors as e:
                failure = str(e)
            except Exception as e:  # an engine failure: say so in the chat instead of leaving "Searching…"
                traceback.print_exc()
                failure = f"Newsdesk could not answer this question ({type(e).__name__}: {e})."
        if failure or answer is None:
            failure = failure or "Newsdesk could not answer this question."
            # Drop the unanswered turn and give the question back, so nothing typed is lost.
            yield messages[:-1], answers, gr.skip(), question
            raise gr.Error(failure)
        answers = list(answers) + [answer]
        messages.append({"role": "assistant", "content": answer_html(answer, turn)})
        yield messages, answers, self.render_sources(answer, turn, 1), gr.skip()

    def select_source(self, answers, evt: gr.EventData):
        """A citation marker or card was clicked: its "turn-n" says which answer and which source."""
        try:
            turn, n = (int(x) for x in str(evt._data.get("cite", "")).split("-"))
            answer = answers[turn]
        except (ValueError, IndexError, AttributeError, TypeError):
            return gr.skip()
        return self.render_sources(answer, turn, n)

    @staticmethod
    def pick_example(evt: gr.SelectData):
        return evt.value["text"]

    @staticmethod
    def new_conversation():
        return [], [], sources_html(None), ""

    # --- the corpus ----------------------------------------------------------------------

    def add_articles(self, files, srcs, date_from, date_to, progress=gr.Progress()):
        """Upload: add readable files to the corpus and index them; rejected files change nothing."""
        if not files:
            raise gr.Error("Choose one or more files to add first.")
        paths = [Path(f) for f in files]
        progress(0.1, desc=f"Waiting to index {len(paths)} file(s)…")
        with self.guard.write():
            progress(0.3, desc=f"Reading and indexing {len(paths)} file(s)…")
            try:
                report, rejected = self.desk.add_files(paths)
            except (IngestBusy, IngestFailed, TaggerUnavailable) as e:  # e.g. the disk is full: say so; the index still serves
                raise gr.Error(str(e)) from None
            except OSError as e:  # copying into the corpus folder failed
                raise gr.Error(f"Could not add the files to the corpus folder {self.desk.config.corpus}: {e}") from None
            stats = self.desk.stats()
            if report.added or report.updated:
                progress(0.9, desc="Preparing the index for questions…")
                self.desk.warm()  # so the next question does not wait for the retriever's caches
        progress(1.0, desc="Done")
        accepted = len(paths) - len(rejected)
        # Toasts as well as the message under the button, which may be scrolled out of view in the sidebar.
        if accepted:
            gr.Info(f"Indexed {report.added} new and {report.updated} updated article(s); "
                    f"the corpus has {stats['articles']:,} articles.")
        for r in rejected:
            gr.Warning(f"Not added: {r['path']} — {r['reason']}")
        return (
            ingest_html(report.to_dict() if accepted else None, rejected),
            corpus_html(stats),
            gr.Dropdown(choices=stats["sources"], value=[s for s in (srcs or []) if s in stats["sources"]]),
            None,
            filters_line(_ui_filters(srcs, date_from, date_to), stats),
        )

    def scope(self, srcs, date_from, date_to) -> str:
        try:
            filters = _ui_filters(srcs, date_from, date_to)
        except gr.Error as e:
            return f'<p class="nd-scope nd-filtered">{escape(e.message)}</p>'
        return filters_line(filters, self.stats())

    # --- the API (named endpoints for gradio_client and @gradio/client) --------------------

    def ask(self, question: str, history: list | None = None, filters: dict | None = None) -> dict:
        """Answer a question with exact citations; the same JSON as `python -m rag ask --json`.

        history: earlier turns as [[question, answer], ...]; filters: {"sources": [...], "date_from": "YYYY-MM-DD", "date_to": ...}.
        """
        pairs = _history_pairs(history)
        with self.guard.read():
            try:
                return self.desk.ask(question, history=pairs, filters=filters or None).to_dict()
            except self.user_errors as e:
                raise gr.Error(str(e)) from None
            except Exception as e:  # e.g. the LLM server is down: tell the caller what failed, not just "Error"
                traceback.print_exc()
                raise gr.Error(f"Newsdesk could not answer this question ({type(e).__name__}: {e}).") from None

    def retrieve(self, question: str, k: int = 10, filters: dict | None = None) -> dict:
        """Ranked source sentences for a question, with offsets into their articles and neighbouring sentences."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
            raise gr.Error("k must be a whole number from 1 to 100.")
        t0 = time.perf_counter()
        with self.guard.read():
            try:
                hits = self.desk.retrieve(question, k=k, filters=filters or None)
            except self.user_errors as e:
                raise gr.Error(str(e)) from None
        return {"question": question, "hits": [h.to_dict() for h in hits], "seconds": round(time.perf_counter() - t0, 4)}

    def article(self, article_id: str) -> dict:
        """An indexed article: id, title, source, published, url, text, and its sentences' offsets."""
        with self.guard.read():
            try:
                return self.desk.article(article_id)
            except KeyError:
                raise gr.Error(f"No article with id {article_id!r}. /retrieve and /ask return article ids.") from None

    def stats(self) -> dict:
        """What is indexed: articles, sentences, chunks, sources and the date range."""
        with self.guard.read():
            return self.desk.stats()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """The engine's embedding vectors (unit length, 384 numbers each) for a list of texts."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise gr.Error("texts must be a list of strings.")
        if len(texts) > 256 or sum(map(len, texts)) > 1_000_000:
            raise gr.Error("Too much at once: send at most 256 texts and 1,000,000 characters per call.")
        if not texts:
            return []
        with self.guard.read():
            return self.desk.embed(texts).astype(float).tolist()


def build_app(desk: Newsdesk, examples: list[str] = (), max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> gr.Blocks:
    """The Gradio app over one engine: chat, sources panel, corpus sidebar, and the named API endpoints."""
    ui = NewsdeskUI(desk)
    initial = ui.stats()
    with gr.Blocks(title="Newsdesk", fill_width=True) as demo:
        answers = gr.State([])  # this conversation's Answer objects, one per turn
        with gr.Sidebar(label="Corpus", open=True, width=330):
            gr.Markdown("### Corpus")
            corpus_box = gr.HTML(corpus_html(initial), elem_id="nd-corpus")
            gr.Markdown("### Filters")
            f_sources = gr.Dropdown(choices=initial["sources"], value=[], multiselect=True, label="Sources",
                                    info="They apply to the next questions. Empty means all.", elem_id="nd-filter-sources")
            with gr.Row():
                f_from = gr.Textbox(label="Published from", placeholder="YYYY-MM-DD", max_lines=1, min_width=120,
                                    elem_id="nd-date-from")
                f_to = gr.Textbox(label="to", placeholder="YYYY-MM-DD", max_lines=1, min_width=120, elem_id="nd-date-to")
            filters = [f_sources, f_from, f_to]
            gr.Markdown(f"### Add articles\n.txt, .md, .json, .jsonl or .html files, up to {max_upload_mb} MB each.")
            files = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", show_label=False,
                            height=120, elem_id="nd-upload")
            add_btn = gr.Button("Add to corpus", variant="secondary", elem_id="nd-add")
            ingest_box = gr.HTML(elem_id="nd-ingest")
        gr.HTML('<div id="nd-header"><h1>Newsdesk</h1><p>Answers from your news articles, '
                "each sentence cited to its exact source.</p></div>")
        with gr.Row(equal_height=False):
            with gr.Column(scale=11, min_width=380):
                chatbot = gr.Chatbot(
                    show_label=False, elem_id="nd-chat", height="calc(100vh - 290px)", min_height=360,
                    examples=[{"text": q} for q in examples] or None, feedback_options=None,
                    placeholder="**Ask the news.** Answers quote the articles and cite each sentence.",
                    buttons=["copy"], group_consecutive_messages=False,
                )
                question = gr.Textbox(show_label=False, placeholder="Ask a question about the articles…",
                                      submit_btn="Ask", max_lines=4, autofocus=True, elem_id="nd-question")
                with gr.Row():
                    scope_line = gr.HTML(filters_line({}, initial), elem_id="nd-scope")
                    clear_btn = gr.Button("New conversation", size="sm", variant="secondary", scale=0, min_width=160)
            with gr.Column(scale=10, min_width=360):
                sources = gr.HTML(sources_html(None), js_on_load=SOURCES_JS, elem_id="nd-sources",
                                  apply_default_css=False)

        private = dict(api_visibility="private")
        chat = dict(inputs=[question, chatbot, answers, *filters], outputs=[chatbot, answers, sources, question], **private)
        question.submit(ui.respond, **chat)
        chatbot.example_select(ui.pick_example, None, question, queue=False, **private).then(ui.respond, **chat)
        sources.click(ui.select_source, [answers], [sources], queue=False, **private)
        for clear in (clear_btn.click, chatbot.clear):
            clear(ui.new_conversation, None, [chatbot, answers, sources, question], queue=False, **private)
        for comp in filters:
            comp.change(ui.scope, filters, [scope_line], queue=False, **private)
        add_btn.click(ui.add_articles, [files, *filters], [ingest_box, corpus_box, f_sources, files, scope_line],
                      concurrency_limit=1, concurrency_id="ingest", **private)

        gr.api(ui.ask, api_name="ask")
        gr.api(ui.retrieve, api_name="retrieve")
        gr.api(ui.article, api_name="article", queue=False)
        gr.api(ui.stats, api_name="stats", queue=False)
        gr.api(ui.embed, api_name="embed")
    return demo


def serve_web_component_script(app) -> None:
    """Serve Gradio's own web-component loader at /gradio.js, so pages can embed <gradio-app> without a CDN.

    The file only imports the hashed bundle next to it (./assets/index-*.js), which the app already serves.
    """
    from fastapi.responses import FileResponse

    script = Path(gr.__file__).parent / "templates" / "frontend" / "gradio.js"
    if script.is_file():
        app.add_api_route("/gradio.js", lambda: FileResponse(script, media_type="text/javascript"),
                          methods=["GET"], include_in_schema=False)


def theme() -> gr.themes.Base:
    # System fonts only: a Google font would be fetched from the internet at page load.
    sans = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Helvetica Neue", "Arial", "sans-serif"]
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate", font=sans,
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def parse_args(argv: list[str] | None, environ=None) -> argparse.Namespace:
    env = os.environ if environ is None else environ
    p = argparse.ArgumentParser(prog="python app.py", description="Newsdesk in the browser, with a Gradio API.")
    add_config_flags(p)
    add_llm_flags(p)
    p.add_argument("--host", default=env.get("NEWSDESK_HOST", "127.0.0.1"),
                   help="address to bind (default 127.0.0.1; use 0.0.0.0 to expose it, with --auth)")
    p.add_argument("--port", type=int, default=int(env.get("NEWSDESK_PORT", 7860)), help="port (default 7860)")
    p.add_argument("--auth", default=env.get("NEWSDESK_AUTH") or None,
                   help="require a login: user:pass (several: a:1,b:2); env NEWSDESK_AUTH")
    p.add_argument("--concurrency", type=int, default=int(env.get("NEWSDESK_CONCURRENCY", 2)),
                   help="questions answered at the same time; the rest wait in a queue (default 2)")
    p.add_argument("--queue-size", type=int, default=int(env.get("NEWSDESK_QUEUE_SIZE", 64)),
                   help="requests that may wait in the queue before new ones are turned away (default 64)")
    p.add_argument("--examples", type=Path, default=env.get("NEWSDESK_EXAMPLES") or None,
                   help="text file of example questions, one a line")
    p.add_argument("--max-upload-mb", type=int, default=int(env.get("NEWSDESK_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)),
                   help=f"largest file the upload accepts, in MB (default {DEFAULT_MAX_UPLOAD_MB})")
    args = p.parse_args(argv)
    if args.auth:
        args.auth = [tuple(pair.split(":", 1)) for pair in args.auth.split(",")]
        if not all(len(pair) == 2 and pair[0] and pair[1] for pair in args.auth):
            p.error("--auth must look like user:password (several: alice:pw1,bob:pw2)")
    return args


def is_loopback(host: str) -> bool:
    """True if only this machine can reach ``host`` (a host name other than localhost counts as reachable)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int, auth) -> str | None:
    """The banner for listening beyond this machine without a login (None when there is nothing to warn about)."""
    if auth or is_loopback(host):
        return None
    bar = "!" * 78
    return "\n".join([
        bar,
        f"WARNING: Newsdesk is listening on {host}:{port} WITHOUT A LOGIN.",
        "Anyone who can reach this address can ask questions, read every indexed article",
        "through the API and add files to the corpus.",
        "Add --auth user:password (or NEWSDESK_AUTH) and serve it over HTTPS behind a",
        "reverse proxy, or leave --host at its default, 127.0.0.1.",
        bar,
    ])


def serve(demo: gr.Blocks, args: argparse.Namespace, blocked: list[Path] = ()) -> str:
    """Queue, launch without blocking, and return the address to open.

    ``blocked``: folders Gradio's file route must never serve (the corpus and the index), even if
    they happen to lie under a folder it does serve.
    """
    banner = exposure_warning(args.host, args.port, args.auth)
    if banner:
        print(banner, file=sys.stderr, flush=True)
    elif not is_loopback(args.host):
        print("note: the login is sent in clear text unless Newsdesk is served over HTTPS (a reverse proxy).",
              file=sys.stderr, flush=True)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    _, url, _ = demo.launch(
        server_name=args.host, server_port=args.port, auth=args.auth, prevent_thread_lock=True, quiet=True,
        ssr_mode=False, theme=theme(), css=CSS, footer_links=["api", "settings"],
        auth_message="Newsdesk: please sign in." if args.auth else None,
        max_file_size=args.max_upload_mb * 2**20, blocked_paths=[str(Path(p).resolve()) for p in blocked],
    )
    serve_web_component_script(demo.app)
    return url.replace("0.0.0.0", "127.0.0.1")


def main(argv: list[str] | None = None) -> int:
    import psutil

    args = parse_args(argv)
    config = config_from(args)
    if config.llm not in (None, "", "none"):
        from rag.llm import LLMUnavailable

        try:
            desk = Newsdesk(config)
        except LLMUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        desk = Newsdesk(config)
    t0 = time.perf_counter()
    desk.embed(["warm up the embedding model"])  # load the model once, before the first user waits for it
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        report = desk.ingest(progress=sys.stderr.isatty())
    except (IngestBusy, IngestFailed, TaggerUnavailable) as e:  # another ingest runs, the disk is full: serve what is indexed
        print(f"warning: {e}; serving the index as it is", file=sys.stderr)
        report = None
    desk.warm()  # the retriever's caches, so the first question is as fast as the rest
    t_ingest = time.perf_counter() - t0
    for problem in report.skipped if report else ():
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)
    examples = load_examples(args.examples) if args.examples else default_examples(desk, config.corpus)

    demo = build_app(desk, examples, args.max_upload_mb)
    url = serve(demo, args, blocked=[config.corpus, config.index])
    ready = time.time() - psutil.Process().create_time()
    stats = desk.stats()
    print(f"Newsdesk is ready at {url}  ({stats['articles']:,} articles, {stats['sentences']:,} sentences; "
          f"model {t_model:.1f} s, index {t_ingest:.1f} s; ready {ready:.1f} s after start)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
