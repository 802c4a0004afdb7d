"""Read a folder of news files into ``Article``s, reporting the files that cannot be read.

Supported: ``.txt`` (first line is the title when it reads as a headline), ``.md`` with optional
YAML front matter, ``.json`` (one record or a list), ``.jsonl`` (one record a line) and ``.html``
(main text and metadata extracted by trafilatura). An article's id is its path relative to the
corpus folder, with ``#n`` appended for the n-th record of a JSON list or JSONL file.

Hostile or broken input never stops a run and is never trusted: a file is read only when it is a
regular file inside the corpus folder (a symbolic link leading outside it is reported, not read)
and no larger than the size limit (checked before reading); binary content is refused whatever the
file's extension; control characters are removed from the text; a record or file that cannot be
read is reported with the reason.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import re
import stat
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path, PureWindowsPath

from rag.config import Config
from rag.types import Article

SUFFIXES = (".txt", ".md", ".json", ".jsonl", ".html", ".htm")
NOT_ARTICLES = ("readme", "license", "licence", "changelog")  # a dataset's own notes, not news
MAX_FILE_BYTES = Config.max_file_bytes

# Byte order marks of the UTF-16/32 files Windows tools write ("Unicode" in Notepad); UTF-32 first,
# since its little-endian mark starts with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# C0 control characters other than tab and line breaks, and DEL: never part of an article's text,
# and in quantity the mark of binary data (random bytes are ~10% of them, text almost none).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BINARY_SHARE = 0.01  # more control characters than this share of the first _SAMPLE characters: binary
_SAMPLE = 65536
_LONGEST_DATE = 64  # characters; longer "dates" are not parsed (free-form parsing is slow)


@dataclass(frozen=True)
class Problem:
    """A file (or record) that was skipped or read with a caveat, and why."""

    path: str
    reason: str
    warning: bool = False  # True: read with a caveat (kept); False: skipped

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


class UnreadableFile(ValueError):
    """Raised for a file that holds no usable article; the message says why."""


def decode(data: bytes) -> tuple[str, str | None]:
    """Text of ``data`` and a warning when it was not UTF-8.

    Non-UTF-8 news files are almost always Windows-1252/Latin-1 (a stray "£" or "é"), so we
    decode those rather than drop the article, and say so; UTF-16/32 with a byte order mark are
    decoded; binary files (NUL bytes, or many control characters) are refused.
    """
    text, warning = _decode(data)
    sample = text[:_SAMPLE]
    if len(_CONTROL.findall(sample)) > _BINARY_SHARE * len(sample):
        raise _binary(data)
    return text, warning


def _decode(data: bytes) -> tuple[str, str | None]:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), None
            except UnicodeDecodeError:
                raise UnreadableFile(f"starts with a {codec.upper()} byte order mark but is not {codec.upper()} text") from None
    if b"\x00" in data:
        raise _binary(data)
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        where = f"byte {e.start}"
    try:
        return data.decode("cp1252"), f"not valid UTF-8 ({where}); decoded as Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), f"not valid UTF-8 ({where}); decoded as Latin-1"


def _binary(data: bytes) -> UnreadableFile:
    """The error for binary content, naming its format when its signature is known (a PNG, a PDF...)."""
    import filetype  # magic-number signatures; only used to name what was refused

    kind = filetype.guess(data[:8192])
    return UnreadableFile(f"binary file ({kind.mime}), not text" if kind else "binary file, not text")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


def too_large(size: int, limit: int) -> str:
    """Why a file of ``size`` bytes is refused."""
    return f"too large: {_size(size)}, over the limit of {_size(limit)} per file (max_file_bytes)"


def read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, refused by its size before reading when over ``max_bytes``.

    A symbolic link at ``path`` is not followed, and a FIFO or device is refused without blocking.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnreadableFile("symbolic link; links are not followed") from None
        raise UnreadableFile(f"cannot read: {e.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UnreadableFile("not a regular file")
            if info.st_size > max_bytes:
                raise UnreadableFile(too_large(info.st_size, max_bytes))
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise UnreadableFile(f"cannot read: {e.strerror}") from None
    if len(data) > max_bytes:  # it grew after its size was checked
        raise UnreadableFile(too_large(len(data), max_bytes))
    return data


def clean(text: str) -> str:
    """``text`` without control characters (form feeds become line breaks)."""
    return _CONTROL.sub("", text.replace("\f", "\n").replace("\v", "\n"))


def _one_line(text: str) -> str:
    return " ".join(clean(text).split())


def upload_name(name: str) -> str:
    """The name an uploaded file is saved under in the corpus folder, or ``UnreadableFile`` saying why not.

    Only the last part of the name is kept, whatever the separators (``../../etc/passwd.txt`` ->
    ``passwd.txt``, ``..\\x.txt`` -> ``x.txt``), without control characters or leading dots (a
    hidden file would never be indexed).

    >>> upload_name("../../news/.Bridge.txt")
    'Bridge.txt'
    """
    base = _one_line(PureWindowsPath(name).name).lstrip(". ")
    suffix = Path(base).suffix.lower()
    if suffix not in SUFFIXES:
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'}: use {', '.join(SUFFIXES)}")
    if not Path(base).stem.strip():
        raise UnreadableFile("the file has no usable name")
    if Path(base).stem.lower() in NOT_ARTICLES:
        raise UnreadableFile("named like a dataset's README/LICENSE, which are not indexed; rename it")
    return base


def iso_date(value) -> str | None:
    """An ISO date (YYYY-MM-DD) from the many ways articles write one, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    s = str(value).strip()
    if len(s) > _LONGEST_DATE:
        return None
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


def _txt(rel: str, text: str, problems: list[Problem]) -> list[Article]:
    first, _, _ = text.lstrip().partition("\n")
    title = first.strip() if _looks_like_headline(first) else ""
    return [Article(id=rel, text=text, title=title)]


def _md(rel: str, text: str, problems: list[Problem]) -> list[Article]:
    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as e:
        raise UnreadableFile(f"broken front matter (YAML): {getattr(e, 'problem', None) or e}") from None
    meta = post.metadata if isinstance(post.metadata, dict) else {}
    body = post.content
    title = _field(meta.get("title"))
    if not title:
        first = body.lstrip().partition("\n")[0].strip()
        if first.startswith("#"):
            title = first.lstrip("#").strip()
    return [_article(rel, {**meta, "text": body, "title": title}, problems)]


def _field(value) -> str:
    """A metadata field as text: strings and numbers only (a list or mapping where text belongs is dropped)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _source(value) -> str:
    if isinstance(value, dict):  # e.g. NewsAPI's {"id": ..., "name": ...}
        value = value.get("name") or value.get("id")
    return _field(value)


def _article(article_id: str, rec: dict, problems: list[Problem]) -> Article:
    """An Article from a record with the usual news field names; a date it cannot read is noted in ``problems``."""
    if not isinstance(rec, dict):
        raise UnreadableFile("record is not a JSON object")
    text = next((rec[k] for k in ("body", "text", "content", "article") if isinstance(rec.get(k), str)), "")
    title = _field(rec.get("title")) or _field(rec.get("headline"))
    if not text.strip():
        raise UnreadableFile("record has no body/text")
    published = next((rec[k] for k in ("published", "published_at", "publishedAt", "date", "pubDate") if rec.get(k)), None)
    when = iso_date(published)
    if published is not None and when is None:
        problems.append(Problem(article_id, f"date {str(published)[:40]!r} not understood; kept without a date", warning=True))
    return Article(
        id=article_id,
        text=text,
        title=title.strip(),
        source=_source(rec.get("source") or rec.get("publisher") or rec.get("sitename")),
        published=when,
        url=_field(rec.get("url")) or _field(rec.get("link")),
    )


def _records(rel: str, records, problems: list[Problem]) -> list[Article]:
    """The readable records of a JSON list or JSONL file; each unreadable one is noted in ``problems``."""
    articles = []
    for n, rec in records:
        try:
            articles.append(_article(f"{rel}#{n}", rec, problems))
        except UnreadableFile as e:
            problems.append(Problem(f"{rel}#{n}", str(e)))
    if not articles:
        reasons = sorted({p.reason for p in problems if not p.warning})
        raise UnreadableFile("no readable records: " + "; ".join(reasons) if reasons else "no records")
    return articles


def _json_value(text: str, broken: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"column {e.colno}" if e.lineno == 1 else f"line {e.lineno} column {e.colno}"
        raise UnreadableFile(f"{broken}: {e.msg} at {where}") from None
    except RecursionError:
        raise UnreadableFile(f"{broken}: nested too deeply") from None


def _json(rel: str, text: str, problems: list[Problem]) -> list[Article]:
    data = _json_value(text, "broken JSON")
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if isinstance(data, list):
        return _records(rel, enumerate(data), problems)
    return [_article(rel, data, problems)]


def _jsonl(rel: str, text: str, problems: list[Problem]) -> list[Article]:
    records = []
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            records.append((n, _json_value(line, "broken JSON line")))
        except UnreadableFile as e:
            problems.append(Problem(f"{rel}#{n}", str(e)))
    return _records(rel, records, problems)


def _html(rel: str, text: str, problems: list[Problem]) -> list[Article]:
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


_READERS = {".txt": _txt, ".md": _md, ".json": _json, ".jsonl": _jsonl, ".html": _html, ".htm": _html}


def parse(data: bytes, rel: str) -> tuple[list[Article], list[Problem]]:
    """Articles in the bytes of a file named ``rel`` (its extension picks the reader), and problems found.

    Raises UnreadableFile when they hold no article.
    """
    suffix = Path(rel).suffix.lower()
    if suffix not in _READERS:
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'}")
    text, warning = decode(data)
    problems = [Problem(rel, warning, warning=True)] if warning else []
    if not text.strip():
        raise UnreadableFile("empty file")
    try:
        articles = _READERS[suffix](rel, text, problems)
    except UnreadableFile:
        raise
    except Exception as e:  # a parser choking on hostile input must not stop the run: report the file
        raise UnreadableFile(f"cannot be read as {suffix[1:].upper()}: {type(e).__name__}: {e}") from None
    articles = [_cleaned(a) for a in articles]
    articles = [a for a in articles if a.text.strip()]
    if not articles:
        raise UnreadableFile("no article text")
    return articles, problems


def _cleaned(a: Article) -> Article:
    return replace(a, text=clean(a.text), title=_one_line(a.title), source=_one_line(a.source), url=_one_line(a.url))


def read_file(path: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Article], list[Problem]]:
    """Articles in one file, and problems found in it; raises UnreadableFile when it holds none."""
    return parse(read_bytes(path, max_bytes), rel)


def _link_target(path: Path, root: Path) -> tuple[Path | None, str | None]:
    """Where a symbolic link in the corpus leads (None: not followed), and why it is reported, if it is."""
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(root):
        return None, "symbolic link pointing outside the corpus folder; not read"
    if not target.exists():
        return None, "broken symbolic link (its target does not exist, or it loops)"
    if target.is_dir():
        return None, None  # rglob does not descend into linked folders; their files are listed where they are
    return target, None


def load_folder(folder: Path, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Article], list[Problem], list[Problem]]:
    """All articles under ``folder`` (sorted by id), the skipped files, and warnings.

    A file that cannot be read never stops the run: it is reported in ``skipped``. Files over
    ``max_bytes`` are refused by their size, unread; symbolic links leading outside ``folder`` are never read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {folder}")
    root = folder.resolve()
    articles: list[Article] = []
    skipped: list[Problem] = []
    warnings: list[Problem] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # hidden files and folders (editor backups, .git, our own index)
        target = path
        if path.is_symlink():
            target, problem = _link_target(path, root)
            if problem and (path.suffix.lower() in SUFFIXES or path.is_dir()):
                skipped.append(Problem(rel, problem))
            if target is None:
                continue
        if not target.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        if path.stem.lower() in NOT_ARTICLES:
            skipped.append(Problem(rel, "documentation file (README/LICENSE), not an article"))
            continue
        try:
            found, problems = read_file(target, rel, max_bytes)
        except UnreadableFile as e:
            skipped.append(Problem(rel, str(e)))
            continue
        for p in problems:
            (warnings if p.warning else skipped).append(p)
        articles.extend(found)
    articles.sort(key=lambda a: a.id)
    return articles, skipped, warnings
