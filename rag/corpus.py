"""Read a folder of news files into ``Article``s, reporting the files that cannot be read.

Supported: ``.txt`` (first line is the title when it reads as a headline), ``.md`` with optional
YAML front matter, ``.json`` (one record or a list), ``.jsonl`` (one record a line) and ``.html``
(main text and metadata extracted by trafilatura). An article's id is its path relative to the
corpus folder, with ``#n`` appended for the n-th record of a JSON list or JSONL file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from rag.types import Article

SUFFIXES = (".txt", ".md", ".json", ".jsonl", ".html", ".htm")
NOT_ARTICLES = ("readme", "license", "licence", "changelog")  # a dataset's own notes, not news


@dataclass(frozen=True)
class Problem:
    """A file (or record) that was skipped or read with a caveat, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


class UnreadableFile(ValueError):
    """Raised for a file that holds no usable article; the message says why."""


def decode(data: bytes) -> tuple[str, str | None]:
    """Text of ``data`` and a warning when it was not UTF-8.

    Non-UTF-8 news files are almost always Windows-1252/Latin-1 (a stray "£" or "é"), so we
    decode those rather than drop the article, and say so; binary files are refused.
    """
    if b"\x00" in data:
        raise UnreadableFile("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        where = f"byte {e.start}"
    try:
        return data.decode("cp1252"), f"not valid UTF-8 ({where}); decoded as Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), f"not valid UTF-8 ({where}); decoded as Latin-1"


def iso_date(value) -> str | None:
    """An ISO date (YYYY-MM-DD) from the many ways articles write one, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    s = str(value).strip()
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    import dateparser  # slow to import; only needed for free-form dates

    parsed = dateparser.parse(s, settings={"PREFER_DAY_OF_MONTH": "first", "RETURN_AS_TIMEZONE_AWARE": False})
    return parsed.date().isoformat() if parsed else None


def _looks_like_headline(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) <= 200 and line[-1] not in ".!?\"”’:;,"


def _txt(rel: str, text: str) -> list[Article]:
    first, _, _ = text.lstrip().partition("\n")
    title = first.strip() if _looks_like_headline(first) else ""
    return [Article(id=rel, text=text, title=title)]


def _md(rel: str, text: str) -> list[Article]:
    import frontmatter

    post = frontmatter.loads(text)
    meta = post.metadata
    body = post.content
    title = str(meta.get("title") or "")
    if not title:
        first = body.lstrip().partition("\n")[0].strip()
        if first.startswith("#"):
            title = first.lstrip("#").strip()
    return [_article(rel, {**meta, "text": body, "title": title})]


def _source(value) -> str:
    if isinstance(value, dict):  # e.g. NewsAPI's {"id": ..., "name": ...}
        value = value.get("name") or value.get("id")
    return str(value or "")


def _article(article_id: str, rec: dict) -> Article:
    """An Article from a record with the usual news field names."""
    if not isinstance(rec, dict):
        raise UnreadableFile("record is not a JSON object")
    text = next((rec[k] for k in ("body", "text", "content", "article") if isinstance(rec.get(k), str)), "")
    title = str(rec.get("title") or rec.get("headline") or "")
    if not text.strip():
        raise UnreadableFile("record has no body/text")
    published = next((rec[k] for k in ("published", "published_at", "publishedAt", "date", "pubDate") if rec.get(k)), None)
    return Article(
        id=article_id,
        text=text,
        title=title.strip(),
        source=_source(rec.get("source") or rec.get("publisher") or rec.get("sitename")),
        published=iso_date(published),
        url=str(rec.get("url") or rec.get("link") or ""),
    )


def _json(rel: str, text: str) -> list[Article]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnreadableFile(f"broken JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if isinstance(data, list):
        return [_article(f"{rel}#{i}", rec) for i, rec in enumerate(data)]
    return [_article(rel, data)]


def _html(rel: str, text: str) -> list[Article]:
    import trafilatura

    doc = trafilatura.bare_extraction(text, with_metadata=True, favor_recall=True)
    if doc is None or not (doc.text or "").strip():
        raise UnreadableFile("no article text found in the HTML")
    return [
        Article(
            id=rel,
            text=doc.text,
            title=(doc.title or "").strip(),
            source=doc.sitename or doc.hostname or "",
            published=iso_date(doc.date),
            url=doc.url or "",
        )
    ]


_READERS = {".txt": _txt, ".md": _md, ".json": _json, ".html": _html, ".htm": _html}


def read_file(path: Path, rel: str) -> tuple[list[Article], list[Problem]]:
    """Articles in one file, and problems found in it; raises UnreadableFile when it holds none."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UnreadableFile(f"cannot read: {e.strerror}") from None
    text, warning = decode(data)
    problems = [Problem(rel, warning)] if warning else []
    if not text.strip():
        raise UnreadableFile("empty file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        articles = []
        for n, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                articles.append(_article(f"{rel}#{n}", json.loads(line)))
            except json.JSONDecodeError as e:
                problems.append(Problem(f"{rel}#{n}", f"broken JSON line: {e.msg}"))
            except UnreadableFile as e:
                problems.append(Problem(f"{rel}#{n}", str(e)))
        if not articles:
            raise UnreadableFile("no readable records: " + "; ".join(p.reason for p in problems) if problems else "no records")
        return articles, problems
    articles = _READERS[suffix](rel, text)
    return [a for a in articles if a.text.strip()], problems


def load_folder(folder: Path) -> tuple[list[Article], list[Problem], list[Problem]]:
    """All articles under ``folder`` (sorted by id), the skipped files, and warnings.

    A file that cannot be read never stops the run: it is reported in ``skipped``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {folder}")
    articles: list[Article] = []
    skipped: list[Problem] = []
    warnings: list[Problem] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # hidden files and folders (editor backups, .git, our own index)
        if path.stem.lower() in NOT_ARTICLES:
            skipped.append(Problem(rel, "documentation file (README/LICENSE), not an article"))
            continue
        try:
            found, problems = read_file(path, rel)
        except UnreadableFile as e:
            skipped.append(Problem(rel, str(e)))
            continue
        for p in problems:
            (warnings if p.path == rel else skipped).append(p)
        articles.extend(found)
    articles.sort(key=lambda a: a.id)
    return articles, skipped, warnings
