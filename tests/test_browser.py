"""The app in a real browser (Debian chromium driven by Playwright), as a journalist uses it.

The app is started once for the module on a copy of the shipped corpus plus one article full of markup.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from app_server import ROOT, AppProcess
from conftest import SHIPPED, free_port, write_corpus

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                       "(`make test` installs it with apt-get when it can)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

QUESTION = "Why did Amazon close its Shanghai lab?"
MARKUP = (
    "Council approves harbour bridge\n"
    'The city council approved a budget of <b>42 million</b> euros for the harbour bridge <script>window.__pwned = 1'
    '</script><img src=x onerror="window.__pwned = 2"> on Tuesday.\n'
    "Work on the bridge starts in the spring.\n"
)
# A long article whose one relevant sentence sits near the end, far below the article box's first screen.
FILLER = [
    "The harbour authority published its annual shipping statistics on Monday.",
    "Container traffic rose slightly compared with the previous year.",
    "Several new cranes were installed on the northern quay during the summer.",
    "Dock workers negotiated a new schedule for weekend shifts.",
    "The customs office extended its opening hours for freight agents.",
    "A dredging project deepened the main channel by two metres.",
]
DEEP = ("Harbour review\n" + "\n".join(" ".join(FILLER) for _ in range(8))
        + "\nThe lighthouse keeper's cat is named Admiral Whiskers.\n" + " ".join(FILLER) + "\n")
ANSWER_TIMEOUT = 90_000  # ms; the first question also warms caches on a busy 2-core machine


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-app")
    files = {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()}
    corpus = write_corpus(tmp / "corpus", {**files, "markup.txt": MARKUP, "deep.txt": DEEP})
    with AppProcess(corpus, tmp / "index", free_port(), tmp / "app.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.fixture
def page(app, browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app.url, wait_until="load")
    page.wait_for_selector("#nd-question textarea")
    yield page
    context.close()


def ask(page, question: str, answers_before: int | None = None) -> None:
    """Type a question, press Enter, and wait until the new answer is complete."""
    done = page.locator("#nd-chat .nd-answer:not(.nd-streaming)")
    before = done.count() if answers_before is None else answers_before
    page.fill("#nd-question textarea", question)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#nd-chat .nd-answer:not(.nd-streaming)').length > n", arg=before,
        timeout=ANSWER_TIMEOUT,
    )


# Is the current citation's highlighted sentence inside the article box's visible area and the window?
IN_VIEW = """() => {
    const box = document.querySelector('#nd-sources .nd-article-text');
    const mark = box && box.querySelector('mark.nd-current');
    if (!mark) return false;
    const m = mark.getBoundingClientRect(), b = box.getBoundingClientRect();
    return m.height > 0 && m.top >= b.top - 1 && m.top < b.bottom && m.top < window.innerHeight && m.bottom > 0;
}"""


def wait_highlight_in_view(page) -> None:
    page.wait_for_function(IN_VIEW, timeout=10_000)  # scrolling happens right after the panel re-renders


def test_answer_cites_and_highlights_the_sentence_in_its_article(page, tmp_path):
    ask(page, QUESTION)
    markers = page.locator("#nd-chat a.nd-cite")
    assert markers.count() >= 1
    wait_highlight_in_view(page)
    mark = page.locator("#nd-sources mark.nd-current")
    assert mark.is_visible()
    # The highlight is exactly citation 1's sentence, inside the article it comes from.
    card = page.locator('#nd-sources .nd-card[data-cite="0-1"]')
    assert card.get_attribute("aria-pressed") == "true"
    quote = card.locator(".nd-card-quote").inner_text().strip()
    assert quote[0] == "“" and quote[-1] == "”"  # the card wraps the sentence in quotes
    assert quote[1:-1] == mark.inner_text()
    shot = tmp_path / "newsdesk-answer.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")


def test_related_sentences_are_shown_apart_and_highlighted_as_related(page):
    ask(page, QUESTION)
    related = page.locator("#nd-sources .nd-card.nd-card-related")
    assert related.count() >= 1
    assert "related, not cited" in related.first.inner_text().lower()
    cited = page.locator("#nd-sources .nd-card:not(.nd-card-related)").count()
    assert related.first.get_attribute("data-cite") == f"0-{cited + 1}"  # numbered on from the citations
    related.first.click()
    page.wait_for_selector(f'#nd-sources .nd-card[data-cite="0-{cited + 1}"][aria-pressed="true"]')
    mark = page.locator("#nd-sources article.nd-related mark.nd-current")  # grey: related, not support
    assert mark.is_visible()
    quote = page.locator(f'#nd-sources .nd-card[data-cite="0-{cited + 1}"] .nd-card-quote').inner_text().strip()
    assert quote[1:-1] == mark.inner_text()


def test_clicking_a_marker_brings_back_that_answers_source(page):
    ask(page, QUESTION)
    ask(page, "When was it established?")
    assert "understood as" in page.locator("#nd-chat .nd-answer").nth(1).inner_text()
    page.wait_for_selector('#nd-sources .nd-sources[data-turn="1"]')
    last = page.locator("#nd-chat .nd-answer").nth(0).locator("a.nd-cite").last
    n = last.inner_text().strip("[]")
    last.click()
    page.wait_for_selector('#nd-sources .nd-sources[data-turn="0"]')
    selected = page.locator(f'#nd-sources .nd-card[data-cite="0-{n}"]')
    assert selected.get_attribute("aria-pressed") == "true"
    wait_highlight_in_view(page)
    # Cards select too.
    page.locator('#nd-sources .nd-card[data-cite="0-1"]').click()
    page.wait_for_selector('#nd-sources .nd-card[data-cite="0-1"][aria-pressed="true"]')


def test_a_sentence_deep_in_an_article_is_scrolled_into_view(page):
    ask(page, "What is the lighthouse keeper's cat named?")
    page.wait_for_selector('#nd-sources .nd-article[data-article="deep.txt"]')
    wait_highlight_in_view(page)
    assert "Admiral Whiskers" in page.locator("#nd-sources mark.nd-current").inner_text()
    assert page.evaluate("() => document.querySelector('#nd-sources .nd-article-text').scrollTop") > 0
    # The rest of the article is shown around it, not just the cited sentence.
    assert page.locator("#nd-sources .nd-article-text").inner_text().count("dredging project") > 1


def test_clicking_an_example_asks_it(page):
    example = page.locator("#nd-chat button.example").first  # examples built from the corpus' titles
    text = example.inner_text().strip()
    assert text
    example.click()
    page.wait_for_selector("#nd-chat .nd-answer:not(.nd-streaming)", timeout=ANSWER_TIMEOUT)
    assert text in page.locator("#nd-chat").inner_text()


def test_abstention_says_the_articles_do_not_say(page):
    ask(page, "What is the population of Brazil?")
    abstain = page.locator("#nd-chat .nd-abstain")
    assert abstain.is_visible()
    assert "The articles don’t say" in abstain.inner_text()
    assert page.locator("#nd-chat .nd-answer a.nd-cite").count() == 0


def test_markup_in_an_article_shows_as_text(page):
    ask(page, "What budget did the city council approve for the harbour bridge?")
    page.wait_for_selector('#nd-sources .nd-article[data-article="markup.txt"]')
    text = page.locator("#nd-sources .nd-article-text").inner_text()
    assert "<b>42 million</b>" in text and "<script>" in text
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("#nd-sources .nd-article-text b, #nd-sources .nd-article-text img, "
                        "#nd-chat .nd-answer img, #nd-chat .nd-answer script").count() == 0


def test_upload_adds_articles_rejects_a_bad_file_and_filters_apply(page, tmp_path):
    good = tmp_path / "ferry.md"
    good.write_text("---\ntitle: Harbour ferry strike ends\nsource: Port Gazette\npublished: 2024-03-05\n---\n"
                    "The harbour ferry strike ended on Tuesday after the crews accepted a pay deal. "
                    "Ferries ran again from noon.\n")
    bad = tmp_path / "broken.json"
    bad.write_text('{"title": "half a record", ')
    before = int(page.locator("#nd-corpus .nd-stat b").first.inner_text().replace(",", ""))
    page.set_input_files("#nd-upload input[type=file]", [str(good), str(bad)])
    page.click("#nd-add")
    page.wait_for_selector("#nd-ingest .nd-ok", timeout=ANSWER_TIMEOUT)
    assert "broken.json" in page.locator("#nd-ingest .nd-bad").inner_text()
    page.wait_for_function(
        "n => document.querySelector('#nd-corpus .nd-stat b').textContent.replace(',', '') == n", arg=str(before + 1))
    assert "Port Gazette" in page.locator("#nd-corpus").inner_text()

    ask(page, "When did the harbour ferry strike end?")
    page.wait_for_selector('#nd-sources .nd-article[data-article="ferry.md"]')
    assert "Port Gazette · 2024-03-05" in page.locator("#nd-sources .nd-card.nd-selected").inner_text()

    # A date filter applies to the next question: nothing was published after 2030.
    page.fill("#nd-date-from textarea, #nd-date-from input", "2030-01-01")
    page.wait_for_selector("#nd-scope .nd-filtered")
    ask(page, "When did the harbour ferry strike end?")
    assert page.locator("#nd-chat .nd-answer").last.locator(".nd-abstain").count() == 1


@pytest.fixture
def host_page_server(app, tmp_path):
    """The README's embed snippets, pointed at the test app, served from another localhost port."""
    for name in ("embed-web-component.html", "embed-iframe.html"):
        html = (ROOT / "examples" / name).read_text().replace("http://127.0.0.1:7860/", app.url)
        (tmp_path / name).write_text(html)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_embedded_chat_works_without_a_cdn(app, browser, host_page_server):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    hosts = set()
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]) if r.url.startswith("http") else None)
    try:
        page.goto(host_page_server + "embed-web-component.html", wait_until="load")
        page.wait_for_selector("gradio-app #nd-question textarea", timeout=60_000)
        ask(page, QUESTION)
        page.wait_for_selector("gradio-app #nd-sources mark.nd-current")

        page.goto(host_page_server + "embed-iframe.html", wait_until="load")
        frame = page.frame_locator("iframe")
        frame.locator("#nd-question textarea").wait_for(timeout=60_000)
        frame.locator("#nd-question textarea").fill(QUESTION)
        frame.locator("#nd-question textarea").press("Enter")
        frame.locator("#nd-sources mark.nd-current").wait_for(timeout=ANSWER_TIMEOUT)
    finally:
        context.close()
    app_host = app.url.split("/")[2]
    assert hosts <= {app_host, host_page_server.split("/")[2]}, hosts  # nothing from anywhere else
