"""Every supported format loads into articles with metadata; unreadable files are reported, not fatal."""

import json

from rag.corpus import load_folder
from tests.conftest import write_corpus

HTML = """<html><head><title>Bridge reopens | Daily Bugle</title>
<meta property="og:site_name" content="Daily Bugle"><meta name="date" content="2024-12-03">
<link rel="canonical" href="https://bugle.example/bridge"></head>
<body><nav>Home | World | Sport</nav><article><h1>Bridge reopens</h1>
<p>The mayor said on Monday that the old bridge will reopen to traffic next week after two years of repairs.</p>
<p>Engineers replaced the piers damaged in the 2022 flood, the council said in a statement.</p>
<p>Residents typed &lt;script&gt;alert(1)&lt;/script&gt; into the council's feedback form.</p></article>
<footer>Copyright Daily Bugle</footer></body></html>"""


def by_id(articles):
    return {a.id: a for a in articles}


def test_txt_headline_becomes_title(tmp_path):
    write_corpus(tmp_path, {"a.txt": "Ad sales boost Time Warner profit\n\nProfits jumped 76%.\n", "b.txt": "No headline here. Just text.\n"})
    articles, skipped, _ = load_folder(tmp_path)
    a = by_id(articles)
    assert a["a.txt"].title == "Ad sales boost Time Warner profit"
    assert a["b.txt"].title == ""
    assert a["a.txt"].text.startswith("Ad sales") and not skipped


def test_markdown_front_matter(tmp_path):
    md = "---\ntitle: Rates held\nsource: Reuters\npublished: 2005-02-10\nurl: https://example.com/r\n---\nThe bank held rates at 4.75%.\n"
    write_corpus(tmp_path, {"news/r.md": md, "plain.md": "# Heading title\n\nBody text here.\n"})
    a = by_id(load_folder(tmp_path)[0])
    r = a["news/r.md"]
    assert (r.title, r.source, r.published, r.url) == ("Rates held", "Reuters", "2005-02-10", "https://example.com/r")
    assert r.text.strip() == "The bank held rates at 4.75%."
    assert a["plain.md"].title == "Heading title"


def test_json_record_list_and_jsonl(tmp_path):
    one = {"title": "One", "body": "Body one.", "source": {"name": "AP"}, "publishedAt": "2004-12-01T10:00:00Z", "url": "u1"}
    many = [{"title": "A", "text": "Text A."}, {"title": "B", "content": "Text B.", "date": "March 3, 2005"}]
    lines = "\n".join(json.dumps(r) for r in many) + "\n{broken\n"
    write_corpus(tmp_path, {"one.json": json.dumps(one), "many.json": json.dumps(many), "feed.jsonl": lines})
    articles, skipped, _ = load_folder(tmp_path)
    a = by_id(articles)
    assert (a["one.json"].source, a["one.json"].published, a["one.json"].url) == ("AP", "2004-12-01", "u1")
    assert a["many.json#1"].published == "2005-03-03" and a["many.json#0"].text == "Text A."
    assert a["feed.jsonl#0"].title == "A" and a["feed.jsonl#1"].text == "Text B."
    # The broken JSONL line is reported by record, the good lines still load.
    assert [p.path for p in skipped] == ["feed.jsonl#2"] and "broken JSON" in skipped[0].reason


def test_html_main_text_and_metadata(tmp_path):
    write_corpus(tmp_path, {"bridge.html": HTML})
    (a,) = load_folder(tmp_path)[0]
    assert "old bridge will reopen" in a.text
    assert "Home | World" not in a.text and "Copyright" not in a.text
    assert a.source == "Daily Bugle" and a.published == "2024-12-03"
    assert a.title.startswith("Bridge reopens")
    assert "<script>alert(1)</script>" in a.text  # kept as text; the UI escapes it


def test_bad_files_are_reported_and_skipped(tmp_path):
    write_corpus(
        tmp_path,
        {
            "good.txt": "Headline\n\nA fine article.\n",
            "broken.json": '{"title": "x", "body": ',
            "empty.txt": "   \n",
            "binary.txt": b"\x00\x01\x02\xff" * 10,
            "nobody.json": json.dumps({"title": "no body"}),
            "notes.csv": "a,b\n",
            "README.txt": "About this dataset.\n",
        },
    )
    articles, skipped, _ = load_folder(tmp_path)
    assert [a.id for a in articles] == ["good.txt"]
    reasons = {p.path: p.reason for p in skipped}
    assert set(reasons) == {"broken.json", "empty.txt", "binary.txt", "nobody.json", "README.txt"}
    assert "broken JSON" in reasons["broken.json"] and "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"] and "no body" in reasons["nobody.json"]


def test_non_utf8_file_is_decoded_and_flagged(tmp_path):
    write_corpus(tmp_path, {"latin.txt": "Prices\n\nIt cost \xa3300 at the caf\xe9.\n".encode("latin-1")})
    articles, skipped, warnings = load_folder(tmp_path)
    assert articles[0].text == "Prices\n\nIt cost £300 at the café.\n"
    assert not skipped and warnings[0].path == "latin.txt" and "UTF-8" in warnings[0].reason


def test_hidden_files_are_ignored(tmp_path):
    write_corpus(tmp_path, {".index/x.txt": "Hidden\n\nNo.\n", "ok.txt": "Shown\n\nYes.\n"})
    assert [a.id for a in load_folder(tmp_path)[0]] == ["ok.txt"]
