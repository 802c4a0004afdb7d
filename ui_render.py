"""HTML for the Newsdesk app: chat answers, the sources panel, the corpus panel, and their CSS/JS.

Everything here turns engine results (``rag.types`` objects and plain dicts) into HTML strings;
no retrieval happens here. Text that comes from articles or users is always ``html.escape``d,
so an article containing ``<script>`` or markup shows as text.
"""

from __future__ import annotations

from html import escape

from rag.types import Answer

# Citation markers are links to "#cite-<turn>-<n>": the click handler in SOURCES_JS reads the
# turn (which answer of the conversation) and n (which citation) from the href.
MARKER = '<a class="nd-cite" href="#cite-{turn}-{n}" title="Show source {n}">[{n}]</a>'


def _meta(source: str | None, published: str | None) -> str:
    return " · ".join(escape(x) for x in (source, published) if x)


def answer_html(answer: Answer, turn: int) -> str:
    """One assistant message: answer sentences with clickable citation markers, or an abstention.

    The whole message is one ``<div>`` without blank lines so the chat's Markdown renderer
    passes it through as HTML instead of interpreting ``*`` or ``_`` in article text.
    """
    if answer.abstained:
        body = (
            '<p class="nd-abstain"><strong>The articles don’t say.</strong> '
            "None of the indexed articles answers this question."
        )
        if answer.related:
            body += " The closest passages are in the sources panel, for reference only."
        body += "</p>"
    else:
        paras = []
        for i, s in enumerate(answer.sentences):
            text = s.text
            if s.span and i == 0:
                a, b = s.span
                text_html = escape(text[:a]) + "<strong>" + escape(text[a:b]) + "</strong>" + escape(text[b:])
            else:
                text_html = escape(text)
            marks = "".join(MARKER.format(turn=turn, n=n) for n in s.citations)
            cls = "" if s.supported else ' class="nd-unsupported" title="Not supported by the cited sentences"'
            paras.append(f"<span{cls}>{text_html}</span>{marks}")
        body = "<p>" + " ".join(paras) + "</p>"
        if answer.short_answer:
            body = f'<p class="nd-short">{escape(answer.short_answer)}</p>' + body
    if answer.note:
        body += f'<p class="nd-note">{escape(answer.note)}</p>'
    foot = []
    if answer.standalone_question and answer.standalone_question != answer.question:
        foot.append(f"understood as: “{escape(answer.standalone_question)}”")
    foot.append(f"{answer.seconds:.2f} s")
    return f'<div class="nd-answer">{body}<p class="nd-foot">{" · ".join(foot)}</p></div>'


def streaming_html(text: str) -> str:
    """The answer so far, while an LLM answerer is still writing it."""
    return f'<div class="nd-answer nd-streaming"><p>{escape(text)}</p></div>'


def sources_items(answer: Answer) -> list[dict]:
    """What the sources panel lists: the citations, then the related sentences, numbered on from them.

    Related items carry ``related: True``: they are shown apart and never as support.
    """
    cited = [dict(c.to_dict(), related=False) for c in answer.citations]
    return cited + [dict(h.to_dict(), n=i, related=True) for i, h in enumerate(answer.related, len(cited) + 1)]


def article_html(text: str, spans: list[tuple[int, int, str]]) -> str:
    """An article's text, escaped piece by piece, with ``<mark>`` around the given (start, end, class) spans."""
    out, pos = [], 0
    for start, end, cls in sorted(set(spans)):
        if start < pos or end > len(text) or start >= end:
            continue  # overlapping or out-of-range spans are shown unmarked rather than garbled
        out.append(escape(text[pos:start]))
        out.append(f'<mark class="{cls}">{escape(text[start:end])}</mark>')
        pos = end
    out.append(escape(text[pos:]))
    return "".join(out)


def sources_html(answer: Answer | None, turn: int = 0, selected: int = 1, article: dict | None = None) -> str:
    """The sources panel for one answer: a card per citation and the selected one's article, highlighted."""
    if answer is None:
        return (
            '<div class="nd-sources nd-empty"><h3>Sources</h3><p>Ask a question: the sentences each answer '
            "cites appear here, highlighted inside their articles. Click a marker like <b>[1]</b> in an "
            "answer to jump to its source.</p></div>"
        )
    items = sources_items(answer)
    if not items:
        return '<div class="nd-sources nd-empty"><h3>Sources</h3><p>Nothing in the articles came close.</p></div>'
    heading = "Closest passages (not an answer)" if answer.abstained else "Sources"
    cards = []
    for it in items:
        sel = " nd-selected" if it["n"] == selected else ""
        rel = " nd-card-related" if it["related"] and not answer.abstained else ""
        title = escape(it["title"] or it["article_id"])
        meta = _meta(it["source"], it["published"])
        cards.append(
            f'<button class="nd-card{sel}{rel}" data-cite="{turn}-{it["n"]}" aria-pressed="{str(bool(sel)).lower()}">'
            f'<span class="nd-num">{it["n"]}</span><span class="nd-card-body">'
            + ('<span class="nd-card-note">related, not cited</span>' if rel else "")
            + f'<span class="nd-card-title">{title}</span>'
            + (f'<span class="nd-card-meta">{meta}</span>' if meta else "")
            + f'<span class="nd-card-quote">“{escape(it["sentence"])}”</span></span></button>'
        )
    viewer = ""
    current = next((it for it in items if it["n"] == selected), None)
    if current and article:
        # The selected sentence is marked "current"; other citations in the same article are marked lightly.
        spans = [(it["start"], it["end"], "nd-other") for it in items
                 if it["article_id"] == current["article_id"] and it["n"] != selected
                 # beside a citation, only other citations: a related sentence is not support
                 and (answer.abstained or not it["related"])
                 and not (it["start"] < current["end"] and current["start"] < it["end"])]
        spans.append((current["start"], current["end"], "nd-current"))
        url = article.get("url") or ""
        details = [x for x in (
            _meta(article.get("source"), article.get("published")),
            # An untitled article already has its id as the heading.
            f'<code>{escape(article["id"])}</code>' if article.get("title") else "",
            f'<a href="{escape(url)}" target="_blank" rel="noopener">original</a>' if url.startswith(("http://", "https://")) else "",
        ) if x]
        viewer = (
            # A related sentence is marked grey, like the closest passages of an abstention.
            f'<article class="nd-article{" nd-related" if current["related"] else ""}" data-article="{escape(article["id"])}">'
            f'<header><h3>{escape(article.get("title") or article["id"])}</h3>'
            f'<div class="nd-article-meta">{" · ".join(details)}</div></header>'
            f'<div class="nd-article-text">{article_html(article["text"], spans)}</div></article>'
        )
    return (
        f'<div class="nd-sources{" nd-related" if answer.abstained else ""}" data-turn="{turn}"><h3>{heading}</h3>'
        f'<div class="nd-cards">{"".join(cards)}</div>{viewer}</div>'
    )


def corpus_html(stats: dict) -> str:
    """What is indexed: counts, sources and date range."""
    sources = stats.get("sources") or []
    if stats.get("date_from"):
        dates = f"{escape(stats['date_from'])} → {escape(stats.get('date_to') or '')}"
    else:
        dates = "no dated articles"
    src = ", ".join(escape(s) for s in sources[:12]) + (f" and {len(sources) - 12} more" if len(sources) > 12 else "")
    return (
        '<div class="nd-corpus">'
        f'<div class="nd-stat"><b>{stats.get("articles", 0):,}</b> articles</div>'
        f'<div class="nd-stat"><b>{stats.get("sentences", 0):,}</b> sentences</div>'
        f'<div class="nd-stat"><b>{len(sources):,}</b> sources</div>'
        f'<p class="nd-corpus-line">Dates: {dates}</p>'
        + (f'<p class="nd-corpus-line">Sources: {src}</p>' if sources else "")
        + "</div>"
    )


def filters_line(filters: dict, stats: dict) -> str:
    """One line under the chat saying which articles the next question searches."""
    parts = []
    if filters.get("sources"):
        parts.append("source " + " or ".join(escape(s) for s in filters["sources"]))
    if filters.get("date_from"):
        parts.append(f"from {escape(filters['date_from'])}")
    if filters.get("date_to"):
        parts.append(f"to {escape(filters['date_to'])}")
    if not parts:
        return f'<p class="nd-scope">Searching all {stats.get("articles", 0):,} articles.</p>'
    return f'<p class="nd-scope nd-filtered">Searching only: {", ".join(parts)}. Change it in the Corpus sidebar.</p>'


def ingest_html(report: dict | None, rejected: list[dict]) -> str:
    """The outcome of an upload: what was added, and each rejected file with its reason."""
    out = []
    if report and (report.get("added") or report.get("updated")):
        out.append(
            f'<p class="nd-ok">Indexed {report["added"]} new and {report["updated"]} updated article(s) '
            f'in {report.get("seconds", 0):.1f} s. The corpus now has {report["articles"]:,} articles.</p>'
        )
    elif report is not None and not rejected:
        out.append('<p class="nd-ok">Nothing new: these articles are already indexed.</p>')
    for r in rejected:
        out.append(f'<p class="nd-bad">Not added: <b>{escape(r["path"])}</b> — {escape(r["reason"])}</p>')
    for w in (report or {}).get("warnings", []):
        out.append(f'<p class="nd-warn">Warning: <b>{escape(w.get("path", ""))}</b> — {escape(w.get("reason", ""))}</p>')
    return "".join(out)


# Click handling for citation markers (in the chat) and cards (in the sources panel), and keeping the
# highlighted sentence scrolled into view. Runs as the sources gr.HTML's js_on_load: `element`,
# `trigger` and `watch` are provided by Gradio.
SOURCES_JS = r"""
const pick = (cite) => trigger('click', {cite: cite});
const reveal = () => {
  const box = element.querySelector('.nd-article-text');
  const mark = box && box.querySelector('mark.nd-current');
  if (!mark) return;
  // Scroll only the article box (not the page), centring the sentence so its neighbours show.
  // The box is position:relative, so mark.offsetTop is measured from the box's top.
  box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3);
};
element.addEventListener('click', (e) => {
  const card = e.target.closest('[data-cite]');
  if (card) { e.preventDefault(); pick(card.dataset.cite); }
});
if (!window.__newsdeskCiteClicks) {
  window.__newsdeskCiteClicks = true;
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href^="#cite-"]');
    if (!a) return;
    e.preventDefault();
    e.stopPropagation();
    pick(a.getAttribute('href').slice('#cite-'.length));
    element.scrollIntoView({block: 'nearest', behavior: 'smooth'});
  }, true);
}
watch('value', () => requestAnimationFrame(reveal));
reveal();
"""

CSS = """
#nd-header { display: flex; align-items: baseline; gap: 1rem; margin: 0.25rem 0 0.5rem; }
#nd-header h1 { font-family: Georgia, 'Times New Roman', serif; font-size: 1.7rem; margin: 0; letter-spacing: -0.01em; }
#nd-header p { margin: 0; color: var(--body-text-color-subdued); }
.nd-answer p { margin: 0 0 0.4rem; line-height: 1.55; }
.nd-answer .nd-foot { font-size: 0.8rem; color: var(--body-text-color-subdued); margin-top: 0.35rem; }
.nd-answer .nd-short { font-weight: 600; }
.nd-answer .nd-unsupported { text-decoration: underline dotted; opacity: 0.75; }
.nd-abstain { border-left: 4px solid #d97706; padding: 0.35rem 0.7rem; background: rgba(217, 119, 6, 0.08); border-radius: 4px; }
a.nd-cite { display: inline-block; margin-left: 0.15rem; padding: 0 0.28rem; border-radius: 4px; font-size: 0.78em;
  font-weight: 600; text-decoration: none !important; vertical-align: 0.15em; line-height: 1.3;
  color: var(--color-accent) !important; background: var(--color-accent-soft); cursor: pointer; }
a.nd-cite:hover { background: var(--color-accent); color: white !important; }
.nd-scope { font-size: 0.85rem; color: var(--body-text-color-subdued); margin: 0.2rem 0.2rem 0; }
.nd-scope.nd-filtered { color: #b45309; font-weight: 600; }
.nd-sources { display: flex; flex-direction: column; height: calc(100vh - 150px); min-height: 420px; }
.nd-sources h3 { margin: 0 0 0.5rem; font-size: 0.85rem; text-transform: uppercase; letter-spacing: 0.08em; color: var(--body-text-color-subdued); }
.nd-empty { height: auto; }
.nd-empty p { color: var(--body-text-color-subdued); line-height: 1.55; max-width: 36rem; }
.nd-cards { flex: 0 0 auto; display: flex; flex-direction: column; gap: 0.4rem; margin-bottom: 0.75rem; max-height: 38%; overflow-y: auto; padding: 2px; }
.nd-card { flex: none; display: flex; gap: 0.6rem; text-align: left; width: 100%; padding: 0.45rem 0.6rem; cursor: pointer;
  border: 1px solid var(--border-color-primary); border-radius: 8px; background: var(--background-fill-primary); font: inherit; color: inherit; }
.nd-card:hover { border-color: var(--color-accent); }
.nd-card.nd-selected { border-color: var(--color-accent); box-shadow: 0 0 0 2px var(--color-accent-soft); }
.nd-num { flex: none; width: 1.5rem; height: 1.5rem; border-radius: 50%; display: grid; place-items: center; font-weight: 700;
  font-size: 0.8rem; background: var(--color-accent-soft); color: var(--color-accent); }
.nd-selected .nd-num { background: var(--color-accent); color: white; }
.nd-card-body { display: flex; flex-direction: column; gap: 0.1rem; min-width: 0; }
.nd-card-title { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.nd-card-meta { font-size: 0.8rem; color: var(--body-text-color-subdued); }
.nd-card-related { border-style: dashed; opacity: 0.85; }
.nd-note { font-size: 0.85rem; font-style: italic; color: var(--body-text-color-subdued); }
.nd-card-note { font-size: 0.72rem; text-transform: uppercase; letter-spacing: 0.04em; color: var(--body-text-color-subdued); }
.nd-card-quote { font-size: 0.85rem; color: var(--body-text-color-subdued); display: -webkit-box; -webkit-line-clamp: 2;
  -webkit-box-orient: vertical; overflow: hidden; }
.nd-article { flex: 1 1 auto; min-height: 0; display: flex; flex-direction: column; border: 1px solid var(--border-color-primary);
  border-radius: 8px; background: var(--background-fill-primary); }
.nd-article header { padding: 0.7rem 1rem 0.5rem; border-bottom: 1px solid var(--border-color-primary); }
.nd-article h3 { font-family: Georgia, 'Times New Roman', serif; font-size: 1.2rem; line-height: 1.3; margin: 0 0 0.25rem; text-transform: none; letter-spacing: 0; color: var(--body-text-color); }
.nd-article-meta { font-size: 0.8rem; color: var(--body-text-color-subdued); }
.nd-article-text { flex: 1 1 auto; min-height: 0; position: relative; white-space: pre-wrap; font-family: Georgia, 'Times New Roman', serif;
  font-size: 1.05rem; line-height: 1.7; padding: 0.8rem 1rem; overflow-y: auto; }
.nd-article-text mark { border-radius: 3px; padding: 0.05em 0.1em; color: inherit; }
mark.nd-current { background: #fde68a; box-shadow: 0 0 0 2px #f59e0b; }
mark.nd-other { background: rgba(253, 230, 138, 0.35); }
.nd-related mark.nd-current { background: rgba(148, 163, 184, 0.3); box-shadow: 0 0 0 2px #94a3b8; }
.dark mark.nd-current { background: #854d0e; box-shadow: 0 0 0 2px #f59e0b; }
.dark mark.nd-other { background: rgba(133, 77, 14, 0.45); }
.dark .nd-related mark.nd-current { background: rgba(148, 163, 184, 0.25); box-shadow: 0 0 0 2px #64748b; }
.nd-corpus { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; }
.nd-stat { font-size: 0.95rem; }
.nd-stat b { font-size: 1.2rem; }
.nd-corpus-line { flex-basis: 100%; margin: 0; font-size: 0.85rem; color: var(--body-text-color-subdued); }
.nd-ok { color: #15803d; margin: 0.2rem 0; }
.nd-bad { color: #b91c1c; margin: 0.2rem 0; }
.nd-warn { color: #b45309; margin: 0.2rem 0; }
"""
