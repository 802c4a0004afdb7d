"""What a question asks for: its content terms, the kind of answer it wants, its parts.

Shared by the retriever's second stage (rag/retrieval.py) and the extractive answerer
(rag/answer.py): "How many jobs went at Fiat?" wants a number; "Which Blackburn player ...?" a
person (``entity_kind``); "..., and why ...?" asks two questions (``sub_questions``). The
patterns here also say what such an answer looks like in a sentence (``ANSWER_PATTERNS``).
"""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
_STOP = frozenset(
    """a an the of to in on for and or but is are was were be been being do does did has have had
    what which who whom whose when where why how many much that this these those it its with by from
    as at about into than then there their they them he she his her him we our you your i me my
    not no yes can could would should will shall may might must if so such also any some all each
    say says said tell told according""".split()
)
_NUMBER = re.compile(
    r"(?:[$£€]\s?\d|\d[\d,.]*\s?(?:%|per ?cent|bn|m\b|million|billion|thousand|k\b)|\b\d[\d,.]*(?:st|nd|rd|th)?\b|"
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|"
    r"dozen|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)\b)",
    re.I,
)
_DATE = re.compile(
    r"\b(?:19|20)\d\d\b|\b(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"yesterday|today|last week|last month|last year|next week|next year)\b",
    re.I,
)
_MONEY = re.compile(r"[$£€¥]\s?\d[\d,.]*(?:\s?(?:bn|m|k|million|billion|trillion)\b)?|"
                    r"\b\d[\d,.]*\s?(?:bn |m |million |billion )?(?:euros?|dollars|pounds|yen|yuan|rupees|francs)\b", re.I)
_YEAR = re.compile(r"\b(?:1[89]|20)\d\d\b")
REASON = re.compile(
    r"\b(?:because|due to|owing to|as a result|result of|in order to|so that|after|amid|following|blamed|"
    r"caused by|reason|since|thanks to|led to|citing|cited)\b",
    re.I,
)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+")
# What an answer of each kind looks like in a sentence; a reason is a clause, found by its cue
# words (REASON), so it has no entry here.
ANSWER_PATTERNS = {"money": _MONEY, "number": _NUMBER, "date": _DATE, "year": _YEAR, "name": _NAME}


def terms(text: str) -> set[str]:
    """Content words of ``text``, lower-cased, crudely stemmed (plural 's' dropped)."""
    out = set()
    for w in WORD.findall(text.lower()):
        w = w.strip("'’-")
        if w and w not in _STOP:
            out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def answer_type(question: str) -> str | None:
    """What kind of answer the question wants: 'money', 'number', 'year', 'date', 'reason', 'name' or None."""
    q = question.lower()
    if re.search(r"\b(what|which) year\b|\bin what year\b", q):
        return "year"
    if re.search(r"\bhow much (money|cash|did|does|do|will|would|was|is|has|had)\b.*\b(pay|paid|cost|invest|earn|spend|spent|"
                 r"raise|charge|sell|sold|buy|bought|worth|fine|fined|owe|lose|lost|make|made)|\bhow much money\b|"
                 r"\bwhat (fee|price|sum|salary|fine)\b|\bhow much (is|was) .* worth\b", q):
        return "money"
    if re.search(r"\bhow (many|much|long|old|far|big|large|often)\b|\bwhat (percentage|share|proportion|amount|price|number)\b|\bby how\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month)\b|\bwhich (year|date|day|month)\b", q):
        return "date"
    if re.search(r"\bwhy\b|\bwhat (caused|led to|prompted)\b|\bfor what reason\b", q):
        return "reason"
    if re.search(r"\bwho\b|\bwhose\b|\bwhich (company|firm|person|player|team|club|country|band|group|minister|actor|singer|film)\b", q):
        return None if asks_who_someone_is(question) else "name"
    return None


_WHO_IS = re.compile(r"^\s*(?:and\s+)?who(?:'s|’s|\s+is|\s+was|\s+are|\s+were)\s+(?P<name>[^?]+?)\s*\?*\s*$", re.I)


def asks_who_someone_is(question: str) -> bool:
    """Does the question ask what a person it names is ("Who is Wang Minjie?"), not for a name?

    >>> asks_who_someone_is("Who is Wang Minjie?"), asks_who_someone_is("Who is Tony Blair's successor?")
    (True, False)
    """
    m = _WHO_IS.match(question)
    return bool(m) and all(w[0].isupper() for w in m.group("name").split())


def has_answer_type(kind: str | None, sentence: str) -> bool:
    pattern = REASON if kind == "reason" else ANSWER_PATTERNS.get(kind or "")
    return bool(pattern and pattern.search(sentence))


_WH = re.compile(r"\b(what|which|who|whom|whose|when|where|why|how)\b")
# The head noun after "what"/"which" says what is asked for: "In which Swedish town ..." a place.
_HEAD_NOUNS = {
    "person": "player person man woman minister chairman chief executive boss manager coach actor actress singer star "
              "director author writer presenter dj president leader founder official spokesman spokeswoman chancellor "
              "secretary judge striker captain winger keeper goalkeeper footballer athlete designer comedian artist "
              "musician rapper host boxer champion politician mp candidate rival partner wife husband son daughter "
              "father mother brother sister winner referee",
    "org": "company firm group bank club team side airline carrier broadcaster network retailer maker manufacturer party "
           "organisation organization band studio channel newspaper label agency insurer supermarket chain publisher "
           "operator giant body institution university school charity union",
    "place": "city town country state region county village nation place venue stadium capital island province area "
             "continent street hotel",
    "work": "film movie album song single book show prize award novel programme program series game product title brand "
            "event tournament competition play musical record",
    "year": "year",
    "date": "date day month time",
    "money": "price cost fee sum salary bill fine worth value budget",
    "number": "percentage share proportion number rate figure age total score margin amount size stake",
}
_HEAD = {w: kind for kind, words in _HEAD_NOUNS.items() for w in words.split()}
# spaCy labels (OntoNotes) that can answer each kind of question.
ENTITY_LABELS = {
    "person": {"PERSON"}, "org": {"ORG"}, "place": {"GPE", "LOC", "FAC"},
    "work": {"WORK_OF_ART", "EVENT", "PRODUCT", "ORG", "LAW"},
    "date": {"DATE", "TIME"}, "year": {"DATE"}, "money": {"MONEY"},
    "number": {"CARDINAL", "QUANTITY", "PERCENT", "MONEY", "ORDINAL", "TIME", "DATE"},
}


_AUXILIARY = frozenset("do does did has have had will would can could should may might must shall".split())


def entity_kind(question: str) -> str | None:
    """What kind of named entity the question's own wh-phrase asks for, e.g. 'person', 'place', 'money'.

    Only the first wh-word counts ("In which state is the film about a priest who ..." asks for
    a place, not a person). Unlike ``answer_type``, which the pattern features were fitted with,
    this reads the head noun: "Which Blackburn player ..." asks for a person.

    >>> entity_kind("In which Swedish town is the Saab plant?")
    'place'
    """
    q = question.lower()
    m = _WH.search(q)
    if not m:
        return None
    wh, rest = m.group(1), re.findall(r"[a-z0-9'-]+", q[m.end():])
    if wh in ("who", "whom", "whose"):
        return None if asks_who_someone_is(question) else "person"
    if wh in ("when", "where", "why"):
        return {"when": "date", "where": "place", "why": None}[wh]
    if wh == "how":
        return answer_type(q) if rest and rest[0] in ("many", "much", "long", "old", "far", "big", "large") else None
    if rest and rest[0] in _AUXILIARY:
        return None  # "What did the city zoo welcome?": "what" is the object; "city" names no answer
    if wh == "what" and rest and rest[0].endswith("ed") and rest[0] not in _HEAD:
        return None  # "What happened at the city zoo?": "what" is the subject of a verb; "city" names no answer
    for w in rest[:6]:
        w = w.removesuffix("'s")
        w = w[:-1] if w.endswith("s") and w[:-1] in _HEAD else w
        if w in _HEAD:
            return _HEAD[w]
    return None


def question_words(question: str) -> set[str]:
    """The question's words, lower-cased, for ``named_in``."""
    return set(re.findall(r"\w+", question.lower()))


def named_in(text: str, asked: set[str]) -> bool:
    """Does the question (its ``question_words``) already name ``text``, word for word? Then it is no answer."""
    return all(w in asked for w in re.findall(r"\w+", text.lower()))


def has_new_entity(kind: str | None, entities: list[tuple[str, str]], asked: set[str]) -> bool:
    """Is one of a sentence's (text, label) entities of the asked-for kind, and not named in the question?

    ``asked``: the question's ``question_words``, computed once per question.
    """
    labels = ENTITY_LABELS.get(kind or "")
    if not labels:
        return False
    for text, label in entities:
        if label in labels and not named_in(text, asked):
            if kind == "year" and not _YEAR.search(text):
                continue
            return True
    return False


# ", and which bishop ...", "; and in how many towns ...": a second question joined to the first.
_JOINED = re.compile(r"(?:,|;)?\s+and\s+(?=(?:(?:in|at|by|on|under|for|from|to|with|of)\s+)?"
                     r"(?:what|which|who|whom|whose|when|where|why|how)\b)", re.I)


# "Which firm made more: Ford or General Motors?": a comparison needs the fact about each option.
_CHOICE = re.compile(r'^(?P<stem>.*\b(?:what|which|who|whose)\b.*):\s*(?P<a>[^:"“”]+?),?\s+or\s+(?P<b>[^:"“”]+?)\?*$', re.I)


def sub_questions(question: str) -> list[str]:
    """The questions a compound question asks, each searchable on its own; ``[question]`` if it asks one.

    Two forms: questions joined by "and" ("..., and why ...?"), and a choice between options
    after a colon ("...: A or B?"), which asks the same thing of each option. A part too short
    to find anything by itself ("how old is she") keeps the rest of the question after it, as
    context; its own wh-word stays first, so its answer type is its own.

    >>> sub_questions("How many jobs went at Fiat, and why did GM pay $2bn?")
    ['How many jobs went at Fiat?', 'why did GM pay $2bn?']
    >>> sub_questions("Which carmaker made the larger profit: General Motors or Ford?")
    ['Which carmaker made the larger profit: General Motors?', 'Which carmaker made the larger profit: Ford?']
    """
    choice = _CHOICE.match(question.strip())
    if choice:
        stem = choice.group("stem").strip()
        return [f"{stem}: {choice.group(x).strip()}?" for x in ("a", "b")]
    parts = [p.strip(" ,;?") for p in _JOINED.split(question)]
    parts = [p for p in parts if p]
    if len(parts) < 2:
        return [question]
    return [p + "?" if len(terms(p)) >= 3 else p + "? " + " ".join(x for x in parts if x is not p) for p in parts]


_UNIT = re.compile(r"\bhow (?:many|much)\s+(?:more\s+|extra\s+)?([a-z]+)", re.I)


def asked_unit(question: str) -> str | None:
    """The thing counted in a "how many X" question (crudely stemmed), e.g. "tonnes" -> "tonne"."""
    m = _UNIT.search(question)
    if not m or m.group(1).lower() in _STOP:
        return None
    return next(iter(terms(m.group(1))), None)


def has_unit_figure(unit: str, sentence: str) -> bool:
    """Does a figure stand right before the counted thing ("3,217 tonnes", "21st time")?"""
    if unit not in sentence.lower():  # a stem is a prefix of its word: most sentences stop here
        return False
    words = [next(iter(terms(w)), "") for w in WORD.findall(sentence.lower())]
    for i, w in enumerate(words):
        if w == unit and any(re.match(r"\d", x) or x in _NUMBERWORDS for x in words[max(0, i - 3) : i]):
            return True
    return False


_NUMBERWORDS = frozenset("two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
                          "hundred thousand million billion dozen half".split())


def has_new_answer(kind: str | None, sentence: str, asked: set[str]) -> bool:
    """Does ``sentence`` hold an answer of the asked-for kind that the question (its ``question_words``) does not?

    Figures, dates and names only: a reason is a clause, and its cue words ("after", "due to")
    are no answer by themselves.
    """
    pattern = ANSWER_PATTERNS.get(kind or "")
    if pattern is None:
        return False
    return any(not named_in(m.group(), asked) for m in pattern.finditer(sentence))
