"""The sandbox LLM's answers to natural-language filter requests: a small deterministic phrase grammar.

A request is recognised by its schema's ``title`` (``FILTER_SCHEMA_TITLE``): an object with ``op``,
``conditions`` and ``refusal``, whose ``conditions.items.anyOf`` holds one branch per column (the
branch's ``description`` is the column's type, its ``column`` property a one-name enum, its
``operator`` property the operators of that type). The phrase is the prompt's *data* (between
``<data>`` and ``</data>``).

The phrase is lower-cased, ``between A and B`` is kept whole, and it is cut into clauses at commas,
``and``, ``or`` (``op`` becomes ``or`` when the phrase uses ``or`` and no ``and``), ``but``,
``whose``, ``where``, ``that``, ``who``, ``which``, ``with`` and ``without``. Each clause, in this order:

- SQL (``select *``, ``where x =``, ``drop table``, ``delete from``, ``update x set``, ``insert
  into``, ``union select``, ``;--``, ``/*`` or the word ``sql``) anywhere in the phrase: a refusal;
- ``no X (yet)`` / ``without X`` / ``missing X`` / ``X is empty``: ``is_empty`` (checkbox:
  ``is_false``); ``X is not empty`` / ``X is set``: ``is_not_empty``;
- ``more than|over|above|greater than N X`` or ``X more than N``: ``gt``; ``at least|min N``:
  ``gte``; ``less than|fewer than|under|below N``: ``lt``; ``at most|up to|no more than N``:
  ``lte`` (N may be ``1,000``, ``10k``, ``2m``, ``$5``); ``X between A and B``: ``between``;
- ``(X) before|after|since|until D`` (D an ISO date or a year; a year before is its 1 January,
  after its 31 December, since its 1 January, until its 31 December): ``lt``/``gt``/``gte``/
  ``lte`` on X, or on the only date column when X names none;
- ``in|from|based in|located in <Country>`` or a demonym (``German``): ``equals`` the country on
  the first column whose name holds ``country`` (a place that is no known country goes to a
  column named like city or location);
- ``X starts with V``: ``starts_with``; ``X contains|containing|mentions V``: ``contains``;
  ``X does not contain V``: ``not_contains``; ``X is not V``: ``not_equals``; ``X is|= V``:
  ``equals`` (multi-select: ``contains``); ``<V> X`` where X names a single-select column
  (``software industry``): ``equals``;
- ``(has|with) (a|an) X``: ``is_not_empty`` (checkbox: ``is_true``);
- leading filler words (``companies in France``) are dropped unless they name a column; a clause
  of filler only (``companies``, ``show me all``) is skipped; anything else is a refusal naming
  the words it could not match.

A column is named by its name, case-insensitive, also without a plural ``s``; a clause naming no
column exactly uses the longest column name found in it as whole words.
"""

from __future__ import annotations

import re
from typing import Any

FILTER_SCHEMA_TITLE = "morket_view_filters"

COUNTRIES = {
    "germany": ("german",), "france": ("french",), "united kingdom": ("british", "uk", "england", "english"),
    "united states": ("american", "usa", "us", "u.s."), "spain": ("spanish",), "italy": ("italian",),
    "netherlands": ("dutch",), "sweden": ("swedish",), "canada": ("canadian",), "japan": ("japanese",),
    "india": ("indian",), "brazil": ("brazilian",), "australia": ("australian",), "switzerland": ("swiss",),
    "austria": ("austrian",), "ireland": ("irish",), "poland": ("polish",), "denmark": ("danish",),
    "norway": ("norwegian",), "finland": ("finnish",), "belgium": ("belgian",), "portugal": ("portuguese",),
    "china": ("chinese",), "mexico": ("mexican",), "israel": ("israeli",), "singapore": ("singaporean",),
}  # fmt: skip
_TITLES = {"united kingdom": "United Kingdom", "united states": "United States"}
_FILLER_WORDS = (
    "show me find list give get all the a an any only rows row companies company leads lead people person "
    "contacts contact accounts account records record firms firm businesses business customers prospects "
    "ones those them which are is have has please"
)
FILLER = frozenset(_FILLER_WORDS.split(" "))
_SQL = re.compile(
    r"\bsql\b|\bselect\s+(?:\*|distinct\b|count\s*\()|\bfrom\s+\w+\s+where\b|\bwhere\s+\w+\s*(?:=|<>|!=)|"
    r"\bdrop\s+(?:table|database|schema)\b|\bdelete\s+from\b|\bupdate\s+\w+\s+set\b|\binsert\s+into\b|"
    r"\bunion\s+(?:all\s+)?select\b|\btruncate\b|\balter\s+table\b|;\s*--|/\*|\bpg_\w+",
    re.IGNORECASE,
)
_NUM = r"\$?-?\d[\d,]*(?:\.\d+)?(?:[km%](?!\w))?"
_CMP = {
    "gt": r"more than|greater than|larger than|bigger than|over|above|>",
    "gte": r"at least|no fewer than|no less than|minimum of|min|>=",
    "lt": r"less than|fewer than|under|below|smaller than|<",
    "lte": r"at most|no more than|up to|maximum of|max|<=",
}
_DATE = r"\d{4}-\d{2}-\d{2}|\d{4}"
_WHEN = {"before": "lt", "after": "gt", "since": "gte", "until": "lte", "on or after": "gte", "on or before": "lte"}
_SPLIT = re.compile(
    r"\s*(?:,(?!\d{3})|;|\band\b|\bor\b|\bbut\b|\bwhose\b|\bwhere\b|\bthat\b|\bwho\b|\bwhich\b"
    r"|(?<!starts )(?<!starting )(?<!begins )(?<!beginning )(?=\bwith\b)|(?=\bwithout\b))\s*",
    re.IGNORECASE,
)


def _fm(pattern: str, text: str) -> re.Match[str] | None:
    return re.fullmatch(pattern, text, re.IGNORECASE)


def is_filter_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("title") == FILTER_SCHEMA_TITLE


def _columns(schema: dict) -> list[tuple[str, str, list[str]]]:
    """(name, type, operators) of every column branch the schema offers."""
    props = schema.get("properties") or {}
    items = (props.get("conditions") or {}).get("items") or {}
    out = []
    for branch in items.get("anyOf") or []:
        bprops = branch.get("properties") or {} if isinstance(branch, dict) else {}
        names = (bprops.get("column") or {}).get("enum") or []
        ops = (bprops.get("operator") or {}).get("enum") or []
        if names:
            kind = str(branch.get("description", "text")).split(";")[0].strip()
            out.append((str(names[0]), kind, [str(o) for o in ops]))
    return out


def _number(text: str) -> str:
    raw = text.strip().lstrip("$").replace(",", "").replace(" ", "")
    scale = 1
    if raw.endswith("k"):
        raw, scale = raw[:-1], 1000
    elif raw.endswith("m"):
        raw, scale = raw[:-1], 1_000_000
    raw = raw.rstrip("%")
    value = float(raw) * scale
    return str(int(value)) if value.is_integer() else str(value)


def _date(text: str, op: str) -> str:
    if len(text) == 4:
        return f"{text}-01-01" if op in ("lt", "gte") else f"{text}-12-31"
    return text


class _Table:
    def __init__(self, columns: list[tuple[str, str, list[str]]]) -> None:
        self.columns = columns
        self.by_name = {}
        for name, kind, ops in columns:
            key = name.casefold()
            self.by_name.setdefault(key, (name, kind, ops))
            if key.endswith("s"):
                self.by_name.setdefault(key[:-1], (name, kind, ops))
            else:
                self.by_name.setdefault(key + "s", (name, kind, ops))

    def find(self, text: str, *, loose: bool = True) -> tuple[str, str, list[str]] | None:
        words = [w for w in text.casefold().split() if w not in ("the", "a", "an", "its", "their")]
        key = " ".join(words).strip(" .!?")
        for tail in ("", " yet", " set", " at all", " field", " column"):
            if tail and key.endswith(tail):
                key = key[: -len(tail)].strip()
            if key in self.by_name:
                return self.by_name[key]
        if not loose:
            return None
        found = [
            (len(k), col) for k, col in self.by_name.items() if re.search(r"(?<!\w)" + re.escape(k) + r"(?!\w)", key)
        ]
        return max(found, key=lambda f: f[0])[1] if found else None

    def first(self, pattern: str, kinds: tuple[str, ...] = ()) -> tuple[str, str, list[str]] | None:
        for col in self.columns:
            if re.search(pattern, col[0], re.IGNORECASE) and (not kinds or col[1] in kinds):
                return col
        return None


def _cond(col: tuple[str, str, list[str]], operator: str, value: Any = None) -> dict[str, Any]:
    return {"column": col[0], "operator": operator, "value": value}


def _country(word: str) -> str | None:
    word = word.strip(" .!?").casefold()
    for country, names in COUNTRIES.items():
        if word == country or word in names:
            return _TITLES.get(country, country.title())
    return None


def _clause(text: str, table: _Table) -> dict[str, Any] | None | str:
    """One clause's condition, None for filler, or the text it could not match."""
    text = re.sub(r"^(?:show me|find|list|give me|get|only|all|just|select)\s+", "", text, flags=re.IGNORECASE).strip(
        " .!?"
    )
    words = text.split()
    while len(words) > 1 and words[0].casefold() in FILLER and table.find(words[0], loose=False) is None:
        words = words[1:]
    text = " ".join(words)
    if not text:
        return None
    found = _fm(r"(?:with no|has no|have no|having no|no|without|missing|lacking) (?P<col>.+?)(?: yet)?", text)
    found = found or _fm(r"(?P<col>.+?) (?:is|are) (?:empty|missing|blank|not set|unknown)", text)
    if found and (col := table.find(found["col"])):
        return _cond(col, "is_false" if col[1] == "checkbox" else "is_empty")
    found = _fm(r"(?P<col>.+?) (?:is|are) (?:not empty|set|present|known|filled in)", text)
    if found and (col := table.find(found["col"])):
        return _cond(col, "is_not_empty")
    found = _fm(rf"(?:with )?(?P<col>.+?) between (?P<a>{_NUM}) & (?P<b>{_NUM})", text)
    if found and (col := table.find(found["col"])):
        return _cond(col, "between", [_number(found["a"]), _number(found["b"])])
    for op, words in _CMP.items():
        found = _fm(rf"(?:with |having |has |have )?(?:{words}) (?P<num>{_NUM}) (?P<col>.+)", text)
        found = found or _fm(rf"(?:with |having )?(?P<col>.+?) (?:of |is |are |at |)?(?:{words}) (?P<num>{_NUM})", text)
        if found and (col := table.find(found["col"])):
            return _cond(col, op, _number(found["num"]))
    for when, op in sorted(_WHEN.items(), key=lambda w: -len(w[0])):
        found = _fm(rf"(?:(?P<col>.+?) )?{when} (?P<date>{_DATE})", text)
        if found:
            col = table.find(found["col"]) if found["col"] else None
            col = col or table.first(".", ("date", "datetime"))
            if col:
                value = _date(found["date"], op) if col[1] in ("date", "datetime") else found["date"]
                return _cond(col, op, value)
    found = _fm(r"(?:.+ )?(?:in|from|based in|located in|headquartered in) (?P<place>[\w .'-]+)", text)
    if found:
        place = re.sub(r"^the ", "", found["place"], flags=re.IGNORECASE)
        country = _country(place)
        col = table.first("country|nation") if country else table.first("city|location|region|place")
        if col and (country or place == found["place"]):
            return _cond(col, "equals", country or found["place"].strip().title())
    for word in text.split():
        country = _country(word) if len(word) > 2 and word.casefold() != "us" else None
        if country and word.casefold() != country.casefold() and (col := table.first("country|nation")):
            rest = [w for w in text.split() if w != word and w.casefold() not in FILLER]
            if not rest:
                return _cond(col, "equals", country)
    for pattern, op in (
        (r"(?P<col>.+?) (?:starts|starting|begins|beginning) with (?P<val>.+)", "starts_with"),
        (r"(?P<col>.+?) (?:does not contain|doesn't contain|not containing) (?P<val>.+)", "not_contains"),
        (r"(?P<col>.+?) (?:contains|containing|includes|including|mentions|mentioning) (?P<val>.+)", "contains"),
        (r"(?P<col>.+?) (?:is not|isn't|is other than|not equal to|!=) (?P<val>.+)", "not_equals"),
        (r"(?P<col>.+?) (?:is|are|equals|equal to|=|of) (?P<val>.+)", "equals"),
    ):
        found = _fm(pattern, text)
        if found and (col := table.find(found["col"], loose=False) or table.find(found["col"])):
            value = found["val"].strip(" \"'")
            if col[1] == "multi_select" and op == "equals":
                op = "contains"
            if col[1] == "checkbox":
                negative = op == "not_equals" or value.casefold() in ("false", "no", "unchecked", "not checked")
                return _cond(col, "is_false" if negative else "is_true")
            if op not in col[2]:
                return text
            return _cond(col, op, value)
    found = _fm(r"(?:in )?(?:the )?(?P<val>[\w&-]+(?: [\w&-]+)?) (?P<col>\w+)", text)
    if found and (col := table.find(found["col"], loose=False)) and col[1] == "single_select":
        return _cond(col, "equals", found["val"].title())
    found = _fm(r"(?:with|has|have|having)? ?(?:a |an |the |some )?(?P<col>.+)", text)
    if found and (col := table.find(found["col"], loose=False)):
        return _cond(col, "is_true" if col[1] == "checkbox" else "is_not_empty")
    if all(w.casefold() in FILLER for w in re.findall(r"[\w'-]+", text)):
        return None
    return text


def answer(schema: dict, phrase: str) -> dict[str, Any]:
    """The filter object the sandbox answers for ``phrase`` under ``schema``."""
    if _SQL.search(phrase):
        return {"op": "and", "conditions": [], "refusal": "I describe rows with filters; I do not write SQL."}
    table = _Table(_columns(schema))
    text = " ".join(phrase.split())
    text = re.sub(rf"between ({_NUM}) and ({_NUM})", r"between \1 & \2", text, flags=re.IGNORECASE)
    has_or, has_and = (re.search(rf"\b{w}\b", text, re.IGNORECASE) for w in ("or", "and"))
    op = "or" if has_or and not has_and else "and"
    conditions, unknown = [], []
    for part in _SPLIT.split(text):
        if not part.strip():
            continue
        result = _clause(part.strip(), table)
        if isinstance(result, dict):
            conditions.append(result)
        elif isinstance(result, str):
            unknown.append(result)
    if unknown:
        words = "; ".join(f"“{u}”" for u in unknown)
        return {"op": op, "conditions": [], "refusal": f"I could not match {words} to a column of this table."}
    if not conditions:
        return {"op": op, "conditions": [], "refusal": "I found no condition in that request."}
    return {"op": op, "conditions": conditions, "refusal": None}
