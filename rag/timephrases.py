"""Turn time phrases in a question ("in December 2004", "last week") into a date range."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_MONTH_YEAR = re.compile(rf"\b(?:in|during|of|from)?\s*({_MONTH})\.?\s+(19\d\d|20\d\d)\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of|from)\s+(19\d\d|20\d\d)\b", re.I)
_RELATIVE = re.compile(r"\b(yesterday|today|this week|last week|past week|this month|last month|past month|this year|last year)\b", re.I)


def date_range(question: str, today: date | None = None) -> tuple[str, str] | None:
    """The (from, to) ISO dates a question's time phrase refers to, or None.

    Relative phrases count from ``today``.

    >>> date_range("What happened to Yukos in December 2004?")
    ('2004-12-01', '2004-12-31')
    >>> date_range("Who resigned last week?", today=date(2005, 3, 16))
    ('2005-03-07', '2005-03-13')
    """
    m = _MONTH_YEAR.search(question)
    if m:
        month, year = _MONTHS[m.group(1).lower()], int(m.group(2))
        last = calendar.monthrange(year, month)[1]
        return date(year, month, 1).isoformat(), date(year, month, last).isoformat()
    m = _YEAR.search(question)
    if m:
        return f"{m.group(1)}-01-01", f"{m.group(1)}-12-31"
    m = _RELATIVE.search(question)
    if not m:
        return None
    today = today or date.today()
    phrase = m.group(1).lower()
    if phrase in ("today", "yesterday"):
        d = today - timedelta(days=phrase == "yesterday")
        return d.isoformat(), d.isoformat()
    if phrase == "this week":
        start = today - timedelta(days=today.weekday())
        return start.isoformat(), today.isoformat()
    if phrase == "last week":
        start = today - timedelta(days=today.weekday() + 7)
        return start.isoformat(), (start + timedelta(days=6)).isoformat()
    if phrase == "past week":
        return (today - timedelta(days=7)).isoformat(), today.isoformat()
    if phrase == "this month":
        return today.replace(day=1).isoformat(), today.isoformat()
    if phrase == "last month":
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1).isoformat(), end.isoformat()
    if phrase == "past month":
        return (today - timedelta(days=30)).isoformat(), today.isoformat()
    if phrase == "this year":
        return f"{today.year}-01-01", today.isoformat()
    return f"{today.year - 1}-01-01", f"{today.year - 1}-12-31"  # last year
