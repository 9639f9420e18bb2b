"""Formula columns: a small expression language compiled to SQL that PostgreSQL evaluates per row.

``{Revenue} * 1.2``, ``CONCAT({First}, " ", {Last})``, ``IF({Score} > 50, "hot", "cold")``.
A hand-written tokenizer and recursive-descent parser build an AST; ``compile_formula`` turns it
into a SQLAlchemy Core expression over the table's typed columns. User text (string literals,
numbers) only ever reaches PostgreSQL as bound parameters, column references only as the
generated ``c_<id>`` names. Nothing is evaluated in Python.

Every compiled node is a pair (value, error): ``error`` is a text expression that is NULL unless
the cell failed (division by zero, text that is not a number), and then ``value`` is NULL. So an
error stays in its cell and never fails the statement: divisors go through NULLIF, casts are
guarded by a pattern. A blank input makes arithmetic and comparisons blank (SQL's NULL), and
CONCAT reads a blank as empty text. References to other formula columns are expanded inline,
so every formula reads only stored input columns and one UPDATE can recompute them all; a cycle
is refused when the formula is saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

MAX_LENGTH = 2000
MAX_NODES = 2000
MAX_DEPTH = 60
# Referenced formulas expand inline; this bounds the SQL (and the digits a product can reach).
MAX_COMPILED_NODES = 5000
TEXT_LIMIT = 100_000

NUMBER, TEXT, BOOL, DATE, DATETIME, BLANK = "number", "text", "bool", "date", "datetime", "blank"

COLUMN_KINDS: dict[str, str] = {
    "number": NUMBER,
    "currency": NUMBER,
    "percent": NUMBER,
    "date": DATE,
    "datetime": DATETIME,
    "checkbox": BOOL,
}

# One pattern for "this text is a number", shared with the tests' reference evaluator.
NUMBER_PATTERN = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?\s*$"


class FormulaError(ValueError):
    """A formula that cannot be used; ``position`` is the 0-based character where it went wrong."""

    def __init__(self, message: str, position: int | None = None) -> None:
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.position = position


# --- tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, ref, name, op, end
    text: str
    pos: int
    end: int


_OPERATORS = ("<=", ">=", "<>", "!=", "=", "<", ">", "+", "-", "*", "/", "&", "(", ")", ",")


def tokenize(source: str) -> list[Token]:
    """Split a formula into tokens, or raise FormulaError at the first character that fits none."""
    if not isinstance(source, str):
        raise FormulaError("A formula is text.")
    if len(source) > MAX_LENGTH:
        raise FormulaError(f"A formula is at most {MAX_LENGTH:,} characters.")
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
        elif ch.isdigit() or (ch == "." and i + 1 < n and source[i + 1].isdigit()):
            j = i
            while j < n and source[j].isdigit():
                j += 1
            if j < n and source[j] == ".":
                j += 1
                while j < n and source[j].isdigit():
                    j += 1
            if j < n and source[j] in "eE":
                k = j + 1
                if k < n and source[k] in "+-":
                    k += 1
                if k < n and source[k].isdigit():
                    while k < n and source[k].isdigit():
                        k += 1
                    j = k
            tokens.append(Token("num", source[i:j], i, j))
            i = j
        elif ch == '"':
            j, parts = i + 1, []
            while True:
                if j >= n:
                    raise FormulaError("This text has no closing quote", i)
                if source[j] == "\\" and j + 1 < n and source[j + 1] in '"\\':
                    parts.append(source[j + 1])
                    j += 2
                elif source[j] == '"':
                    if j + 1 < n and source[j + 1] == '"':
                        parts.append('"')
                        j += 2
                    else:
                        break
                else:
                    parts.append(source[j])
                    j += 1
            tokens.append(Token("str", "".join(parts), i, j + 1))
            i = j + 1
        elif ch == "{":
            j = source.find("}", i + 1)
            if j < 0:
                raise FormulaError("This column reference has no closing }", i)
            name = source[i + 1 : j].strip()
            if not name:
                raise FormulaError("Empty column reference {}", i)
            tokens.append(Token("ref", name, i, j + 1))
            i = j + 1
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            tokens.append(Token("name", source[i:j].upper(), i, j))
            i = j
        else:
            for op in _OPERATORS:
                if source.startswith(op, i):
                    tokens.append(Token("op", "<>" if op == "!=" else op, i, i + len(op)))
                    i += len(op)
                    break
            else:
                raise FormulaError(f"Unexpected character “{ch}”", i)
    tokens.append(Token("end", "", n, n))
    return tokens


# --- AST -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: Decimal
    pos: int = 0


@dataclass(frozen=True)
class Str:
    value: str
    pos: int = 0


@dataclass(frozen=True)
class Bool:
    value: bool
    pos: int = 0


@dataclass(frozen=True)
class Ref:
    name: str
    pos: int = 0


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "NOT"
    operand: Node
    pos: int = 0


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / & = <> < <= > >= AND OR
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int = 0


Node = Num | Str | Bool | Ref | Unary | Binary | Call

# name -> (min args, max args or None for any)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "LOWER": (1, 1),
    "UPPER": (1, 1),
    "TRIM": (1, 1),
    "LEN": (1, 1),
    "LEFT": (2, 2),
    "RIGHT": (2, 2),
    "CONCAT": (1, None),
    "ROUND": (1, 2),
    "ABS": (1, 1),
    "MIN": (1, None),
    "MAX": (1, None),
    "IF": (2, 3),
    "ISBLANK": (1, 1),
    "TODAY": (0, 0),
    "YEAR": (1, 1),
    "MONTH": (1, 1),
    "DAY": (1, 1),
    "AND": (1, None),
    "OR": (1, None),
    "NOT": (1, 1),
}

_COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.i = 0
        self.nodes = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, kind: str, *texts: str) -> bool:
        return self.tok.kind == kind and (not texts or self.tok.text in texts)

    def count(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormulaError(f"A formula has at most {MAX_NODES:,} parts.")
        return node

    def parse(self) -> Node:
        if self.at("end"):
            raise FormulaError("The formula is empty.", 0)
        node = self.expr()
        if not self.at("end"):
            raise FormulaError(f"Unexpected “{self.tok.text or self.tok.kind}”", self.tok.pos)
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError("The formula is nested too deeply.", self.tok.pos)
        node = self.or_()
        self.depth -= 1
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.at("name", "OR"):
            pos = self.take().pos
            node = self.count(Binary("OR", node, self.and_(), pos))
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.at("name", "AND"):
            pos = self.take().pos
            node = self.count(Binary("AND", node, self.not_(), pos))
        return node

    def not_(self) -> Node:
        if self.at("name", "NOT") and self.tokens[self.i + 1].text != "(":
            pos = self.take().pos
            return self.count(Unary("NOT", self.not_(), pos))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.concat()
        if self.at("op", *_COMPARISONS):
            token = self.take()
            node = self.count(Binary(token.text, node, self.concat(), token.pos))
            if self.at("op", *_COMPARISONS):
                raise FormulaError("Chain comparisons with AND", self.tok.pos)
        return node

    def concat(self) -> Node:
        node = self.additive()
        while self.at("op", "&"):
            pos = self.take().pos
            node = self.count(Binary("&", node, self.additive(), pos))
        return node

    def additive(self) -> Node:
        node = self.term()
        while self.at("op", "+", "-"):
            token = self.take()
            node = self.count(Binary(token.text, node, self.term(), token.pos))
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at("op", "*", "/"):
            token = self.take()
            node = self.count(Binary(token.text, node, self.unary(), token.pos))
        return node

    def unary(self) -> Node:
        if self.at("op", "-", "+"):
            token = self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FormulaError("The formula is nested too deeply.", token.pos)
            operand = self.unary()
            self.depth -= 1
            return operand if token.text == "+" else self.count(Unary("-", operand, token.pos))
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "num":
            try:
                value = Decimal(token.text)
            except InvalidOperation as exc:  # pragma: no cover - the tokenizer admits only decimals
                raise FormulaError(f"“{token.text}” is not a number", token.pos) from exc
            if abs(value) >= Decimal(10) ** 18 or (value != 0 and abs(value) < Decimal(10) ** -12):
                raise FormulaError("Numbers in a formula are between 10^-12 and 10^18", token.pos)
            return self.count(Num(value, token.pos))
        if token.kind == "str":
            if "\x00" in token.text:
                raise FormulaError("Text cannot contain a NUL character", token.pos)
            return self.count(Str(token.text, token.pos))
        if token.kind == "ref":
            return self.count(Ref(token.text, token.pos))
        if token.kind == "name":
            if token.text in ("TRUE", "FALSE") and not self.at("op", "("):
                return self.count(Bool(token.text == "TRUE", token.pos))
            if token.text not in FUNCTIONS:
                raise FormulaError(f"Unknown function {token.text}", token.pos)
            if not self.at("op", "("):
                raise FormulaError(f"{token.text} needs parentheses: {token.text}(…)", token.end)
            self.take()
            args: list[Node] = []
            if not self.at("op", ")"):
                args.append(self.expr())
                while self.at("op", ","):
                    self.take()
                    args.append(self.expr())
            if not self.at("op", ")"):
                raise FormulaError(f"Expected “,” or “)” in {token.text}(…)", self.tok.pos)
            self.take()
            low, high = FUNCTIONS[token.text]
            if len(args) < low or (high is not None and len(args) > high):
                wanted = f"{low}" if low == high else f"{low} or more" if high is None else f"{low} to {high}"
                raise FormulaError(f"{token.text} takes {wanted} argument{'s' if wanted != '1' else ''}", token.pos)
            return self.count(Call(token.text, tuple(args), token.pos))
        if token.kind == "op" and token.text == "(":
            node = self.expr()
            if not self.at("op", ")"):
                raise FormulaError("Expected “)”", self.tok.pos)
            self.take()
            return node
        if token.kind == "end":
            raise FormulaError("The formula ends too early", token.pos)
        raise FormulaError(f"Unexpected “{token.text}”", token.pos)


def parse(source: str) -> Node:
    """Parse a formula into its AST, or raise FormulaError with the position of the problem."""
    return _Parser(source).parse()


def references(node: Node) -> list[Ref]:
    """Return every column reference in the AST, in source order."""
    found: list[Ref] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Ref):
            found.append(current)
        elif isinstance(current, Unary):
            stack.append(current.operand)
        elif isinstance(current, Binary):
            stack.extend((current.right, current.left))
        elif isinstance(current, Call):
            stack.extend(reversed(current.args))
    return sorted(found, key=lambda r: r.pos)


def rename_reference(source: str, old: str, new: str) -> str:
    """Return the formula with every reference to column ``old`` pointing at ``new`` instead."""
    out, last = [], 0
    for token in tokenize(source):
        if token.kind == "ref" and token.text.casefold() == old.casefold():
            out.append(source[last : token.pos])
            out.append("{" + new + "}")
            last = token.end
    out.append(source[last:])
    return "".join(out)


# --- compilation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    """A compiled node: its SQL value, its SQL error message (NULL when fine) and its static type."""

    value: Any
    error: Any
    kind: str


@dataclass(frozen=True)
class Source:
    """A column a formula may name: its id, name, Morket type, config and Core column."""

    id: int
    name: str
    type: str
    config: Mapping[str, Any]
    column: Any


_NO_ERROR = sa.null()


def _err(*errors: Any) -> Any:
    present = [e for e in errors if e is not _NO_ERROR]
    if not present:
        return _NO_ERROR
    return present[0] if len(present) == 1 else sa.func.coalesce(*present)


def _lit(value: Any, type_: Any) -> Any:
    return sa.bindparam(None, value, type_=type_)


def _as_number(node: Compiled, what: str, pos: int) -> Compiled:
    if node.kind == NUMBER or node.kind == BLANK:
        return Compiled(sa.cast(node.value, sa.Numeric) if node.kind == BLANK else node.value, node.error, NUMBER)
    if node.kind == TEXT:
        ok = node.value.op("~", return_type=sa.Boolean)(_lit(NUMBER_PATTERN, sa.Text))
        value = sa.case((ok, sa.cast(sa.func.trim(node.value), sa.Numeric)), else_=sa.null())
        bad = sa.case(
            (sa.and_(node.value.is_not(None), sa.not_(ok)), _lit(f"{what}: not a number", sa.Text)),
            else_=sa.null(),
        )
        return Compiled(value, _err(node.error, bad), NUMBER)
    raise FormulaError(f"{what} needs a number, not {_KIND_WORDS[node.kind]}", pos)


def _as_text(node: Compiled) -> Compiled:
    if node.kind == TEXT:
        return node
    if node.kind == BLANK:
        return Compiled(sa.cast(node.value, sa.Text), node.error, TEXT)
    if node.kind == NUMBER:
        return Compiled(sa.cast(sa.func.trim_scale(node.value), sa.Text), node.error, TEXT)
    if node.kind == BOOL:
        return Compiled(
            sa.case((node.value, "true"), (sa.not_(node.value), "false"), else_=sa.null()), node.error, TEXT
        )
    if node.kind == DATE:
        return Compiled(sa.func.to_char(node.value, "YYYY-MM-DD"), node.error, TEXT)
    return Compiled(
        sa.func.to_char(sa.func.timezone("UTC", node.value), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), node.error, TEXT
    )


def _as_bool(node: Compiled, pos: int) -> Compiled:
    if node.kind == BOOL:
        return node
    if node.kind == BLANK:
        return Compiled(sa.cast(node.value, sa.Boolean), node.error, BOOL)
    if node.kind == NUMBER:
        return Compiled(node.value != 0, node.error, BOOL)
    if node.kind == TEXT:
        return Compiled(node.value != "", node.error, BOOL)
    raise FormulaError(f"A condition needs true/false, not {_KIND_WORDS[node.kind]}", pos)


_KIND_WORDS = {NUMBER: "a number", TEXT: "text", BOOL: "true/false", DATE: "a date", DATETIME: "a date and time"}


def _source_value(source: Source) -> Compiled:
    col = source.column
    kind = COLUMN_KINDS.get(source.type)
    if kind is not None:
        return Compiled(col, _NO_ERROR, kind)
    if source.type == "multi_select":
        return Compiled(sa.func.array_to_string(col, ", "), _NO_ERROR, TEXT)
    if source.type in ("json", "enrichment"):
        return Compiled(sa.cast(col, sa.Text), _NO_ERROR, TEXT)
    return Compiled(col, _NO_ERROR, TEXT)


class _Compiler:
    def __init__(self, sources: Mapping[str, Source], formulas: Mapping[int, str]) -> None:
        self.by_name = {name.casefold(): s for name, s in sources.items()}
        self.formulas = formulas
        self.stack: list[int] = []
        self.used: set[int] = set()
        self.size = 0

    def compile_source(self, source: Source, pos: int) -> Compiled:
        if source.type != "formula":
            self.used.add(source.id)
            return _source_value(source)
        if source.id in self.stack:
            names = [s.name for s in self.by_name.values() if s.id in self.stack]
            raise FormulaError(f"Formulas refer to each other in a loop ({', '.join(names)})", pos)
        expression = self.formulas.get(source.id) or ""
        try:
            tree = parse(expression)
        except FormulaError as exc:
            raise FormulaError(f"Formula column {source.name} is broken: {exc}", pos) from exc
        self.stack.append(source.id)
        result = self.node(tree)
        self.stack.pop()
        return result

    def node(self, node: Node) -> Compiled:  # one arm per node kind
        self.size += 1
        if self.size > MAX_COMPILED_NODES:
            raise FormulaError(f"With the formulas it uses, this formula has over {MAX_COMPILED_NODES:,} parts.")
        if isinstance(node, Num):
            return Compiled(_lit(node.value, sa.Numeric), _NO_ERROR, NUMBER)
        if isinstance(node, Str):
            return Compiled(_lit(node.value, sa.Text), _NO_ERROR, TEXT)
        if isinstance(node, Bool):
            return Compiled(sa.true() if node.value else sa.false(), _NO_ERROR, BOOL)
        if isinstance(node, Ref):
            source = self.by_name.get(node.name.casefold())
            if source is None:
                raise FormulaError(f"No column named “{node.name}”", node.pos)
            return self.compile_source(source, node.pos)
        if isinstance(node, Unary):
            operand = self.node(node.operand)
            if node.op == "-":
                num = _as_number(operand, "Minus", node.pos)
                return Compiled(-num.value, num.error, NUMBER)
            cond = _as_bool(operand, node.pos)
            return Compiled(sa.not_(cond.value), cond.error, BOOL)
        if isinstance(node, Binary):
            return self.binary(node)
        return self.call(node)

    def binary(self, node: Binary) -> Compiled:
        left, right = self.node(node.left), self.node(node.right)
        if node.op in ("+", "-", "*", "/"):
            a, b = _as_number(left, node.op, node.pos), _as_number(right, node.op, node.pos)
            if node.op == "+":
                return Compiled(a.value + b.value, _err(a.error, b.error), NUMBER)
            if node.op == "-":
                return Compiled(a.value - b.value, _err(a.error, b.error), NUMBER)
            if node.op == "*":
                return Compiled(a.value * b.value, _err(a.error, b.error), NUMBER)
            zero = sa.case((b.value == 0, _lit("Division by zero", sa.Text)), else_=sa.null())
            return Compiled(a.value / sa.func.nullif(b.value, 0), _err(a.error, b.error, zero), NUMBER)
        if node.op == "&":
            a, b = _as_text(left), _as_text(right)
            return Compiled(
                sa.func.coalesce(a.value, "").op("||")(sa.func.coalesce(b.value, "")), _err(a.error, b.error), TEXT
            )
        if node.op in ("AND", "OR"):
            a, b = _as_bool(left, node.pos), _as_bool(right, node.pos)
            joined = sa.and_(a.value, b.value) if node.op == "AND" else sa.or_(a.value, b.value)
            return Compiled(joined, _err(a.error, b.error), BOOL)
        return self.compare(node.op, left, right, node.pos)

    def compare(self, op: str, left: Compiled, right: Compiled, pos: int) -> Compiled:
        kinds = {left.kind, right.kind} - {BLANK}
        if kinds <= {NUMBER} or kinds == {NUMBER, TEXT}:
            left, right = _as_number(left, op, pos), _as_number(right, op, pos)
        elif kinds == {TEXT, DATE} or kinds == {TEXT, DATETIME} or kinds == {TEXT, BOOL}:
            left, right = _as_text(left), _as_text(right)
        elif len(kinds) > 1:
            words = " and ".join(_KIND_WORDS[k] for k in sorted(kinds))
            raise FormulaError(f"Cannot compare {words}", pos)
        a, b = left.value, right.value
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "=": lambda x, y: x == y,
            "<>": lambda x, y: x != y,
            "<": lambda x, y: x < y,
            "<=": lambda x, y: x <= y,
            ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y,
        }
        return Compiled(ops[op](a, b), _err(left.error, right.error), BOOL)

    def call(self, node: Call) -> Compiled:  # one arm per function
        name, pos = node.name, node.pos
        if name == "TODAY":
            return Compiled(sa.cast(sa.func.timezone("UTC", sa.func.now()), sa.Date), _NO_ERROR, DATE)
        if name == "IF":
            return self.if_(node)
        args = [self.node(a) for a in node.args]
        if name in ("LOWER", "UPPER", "TRIM"):
            text = _as_text(args[0])
            fn = {"LOWER": sa.func.lower, "UPPER": sa.func.upper, "TRIM": sa.func.btrim}[name]
            return Compiled(fn(text.value), text.error, TEXT)
        if name == "LEN":
            text = _as_text(args[0])
            return Compiled(sa.cast(sa.func.char_length(text.value), sa.Numeric), text.error, NUMBER)
        if name in ("LEFT", "RIGHT"):
            text, count = _as_text(args[0]), _as_number(args[1], name, pos)
            # Clamp before the integer cast so that a huge count cannot overflow it.
            n = sa.cast(sa.func.least(sa.func.greatest(sa.func.round(count.value), 0), TEXT_LIMIT), sa.Integer)
            fn = sa.func.left if name == "LEFT" else sa.func.right
            return Compiled(fn(text.value, n), _err(text.error, count.error), TEXT)
        if name == "CONCAT":
            texts = [_as_text(a) for a in args]
            value = (
                sa.func.concat(*(t.value for t in texts)) if len(texts) > 1 else sa.func.coalesce(texts[0].value, "")
            )
            return Compiled(value, _err(*(t.error for t in texts)), TEXT)
        if name == "ROUND":
            num = _as_number(args[0], name, pos)
            if len(args) == 1:
                return Compiled(sa.func.round(num.value), num.error, NUMBER)
            digits = _as_number(args[1], name, pos)
            d = sa.cast(sa.func.least(sa.func.greatest(sa.func.round(digits.value), -18), 12), sa.Integer)
            return Compiled(sa.func.round(num.value, d), _err(num.error, digits.error), NUMBER)
        if name == "ABS":
            num = _as_number(args[0], name, pos)
            return Compiled(sa.func.abs(num.value), num.error, NUMBER)
        if name in ("MIN", "MAX"):
            nums = [_as_number(a, name, pos) for a in args]
            fn = sa.func.least if name == "MIN" else sa.func.greatest
            value = fn(*(n.value for n in nums)) if len(nums) > 1 else nums[0].value
            return Compiled(value, _err(*(n.error for n in nums)), NUMBER)
        if name == "ISBLANK":
            arg = args[0]
            blank = arg.value.is_(None) if arg.kind != TEXT else sa.func.coalesce(arg.value, "") == ""
            return Compiled(blank, arg.error, BOOL)
        if name in ("YEAR", "MONTH", "DAY"):
            arg = args[0]
            if arg.kind == DATETIME:
                moment = sa.func.timezone("UTC", arg.value)
            elif arg.kind in (DATE, BLANK):
                moment = arg.value
            else:
                raise FormulaError(f"{name} needs a date, not {_KIND_WORDS[arg.kind]}", pos)
            return Compiled(sa.cast(sa.extract(name.lower(), moment), sa.Numeric), arg.error, NUMBER)
        conds = [_as_bool(a, pos) for a in args]
        if name == "NOT":
            return Compiled(sa.not_(conds[0].value), conds[0].error, BOOL)
        joined = sa.and_(*(c.value for c in conds)) if name == "AND" else sa.or_(*(c.value for c in conds))
        return Compiled(joined, _err(*(c.error for c in conds)), BOOL)

    def if_(self, node: Call) -> Compiled:
        cond = _as_bool(self.node(node.args[0]), node.pos)
        then = self.node(node.args[1])
        other = self.node(node.args[2]) if len(node.args) == 3 else Compiled(sa.null(), _NO_ERROR, BLANK)
        kinds = {then.kind, other.kind} - {BLANK}
        if len(kinds) > 1:
            then, other, kinds = _as_text(then), _as_text(other), {TEXT}
        kind = next(iter(kinds)) if kinds else BLANK
        value = sa.case((cond.value, then.value), else_=other.value)
        if cond.error is _NO_ERROR and then.error is _NO_ERROR and other.error is _NO_ERROR:
            return Compiled(value, _NO_ERROR, kind)
        whens = [(cond.error.is_not(None), cond.error)] if cond.error is not _NO_ERROR else []
        error = sa.case(*whens, (cond.value, then.error), else_=other.error)
        return Compiled(value, error, kind)


@dataclass(frozen=True)
class CompiledFormula:
    """A compiled formula: its text and per-row error (``raw_*``), its result type and the columns it reads.

    ``finish`` turns the raw pair into what is stored; ``value`` and ``error`` are that, ready to select.
    """

    raw_value: Any
    raw_error: Any
    result_type: str
    used_column_ids: frozenset[int]

    @property
    def value(self) -> Any:
        return finish(self.raw_value, self.raw_error)[0]

    @property
    def error(self) -> Any:
        return finish(self.raw_value, self.raw_error)[1]


def finish(value: Any, error: Any) -> tuple[Any, Any]:
    """Return the stored (value, error) of a raw pair: blank where it failed or is too long.

    The UPDATE computes the raw pair once per row in a subquery and applies this on its columns, so
    PostgreSQL evaluates the formula once rather than once per reference here.
    """
    too_long = sa.func.char_length(value) > TEXT_LIMIT
    error = sa.func.coalesce(
        error, sa.case((too_long, _lit("Result is longer than 100,000 characters", sa.Text)), else_=sa.null())
    )
    return sa.case((error.is_not(None), sa.null()), else_=value), error


def compile_formula(
    expression: str, sources: Mapping[str, Source], formulas: Mapping[int, str], *, self_id: int | None = None
) -> CompiledFormula:
    """Compile ``expression`` over ``sources`` (name → Source); raise FormulaError with its position.

    ``formulas`` gives the expression of every formula column (by id) so that references to them
    expand inline; ``self_id`` is the column being defined, so a reference back to it is a loop.
    """
    tree = parse(expression)
    compiler = _Compiler(sources, formulas)
    if self_id is not None:
        compiler.stack.append(self_id)
    result = compiler.node(tree)
    text = _as_text(result)
    error = sa.cast(text.error, sa.Text) if text.error is not _NO_ERROR else sa.cast(sa.null(), sa.Text)
    return CompiledFormula(text.value, error, result.kind, frozenset(compiler.used))


def error_state(column_id: int, error: Any, cell_state: Any) -> Any:
    """Return ``cell_state`` with the column's error entry set (error not NULL) or removed."""
    key = str(int(column_id))
    base = sa.func.coalesce(cell_state, sa.cast(sa.literal("{}"), pg.JSONB))
    cleared = base.op("-")(_lit(key, sa.Text))
    marked = base.op("||")(
        sa.func.jsonb_build_object(key, sa.func.jsonb_build_object("status", "error", "message", error))
    )
    return sa.func.nullif(sa.case((error.is_not(None), marked), else_=cleared), sa.cast(sa.literal("{}"), pg.JSONB))
