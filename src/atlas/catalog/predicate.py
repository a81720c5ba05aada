"""The predicate language of ``find()``: parsing a predicate string into a typed tree.

A predicate is a Python *expression* that is parsed with :mod:`ast` and checked against an
allow-list; it is never evaluated by Python. It consists of:

* names: ``station``, ``temperature.max``, ``depth.null_count``; a part that is not a plain
  identifier is quoted with backticks: ```my var`.max``, ```sea-level```;
* literals: numbers, strings, ``True``/``False``, ``float('nan')``, ``float('inf')``,
  timestamps ``ts('2021-06-01')`` (also ``timestamp(...)``; tz-aware values are converted to
  UTC), lists/tuples of literals after ``in`` / ``not in``, a tuple of ints to compare a
  ``.shape`` with;
* comparisons ``== != < <= > >=`` (chains such as ``0 <= lat < 30`` too), ``in``, ``not in``,
  ``is None`` / ``is not None``;
* ``and``, ``or``, ``not`` (``&``, ``|``, ``~`` are accepted as synonyms around parenthesised
  predicates);
* functions ``isnull(x)``, ``notnull(x)``, ``isnan(x)`` and ``any(array)``.

Anything else (calls, subscripts, arithmetic, lambdas, attribute access on literals...) is
rejected with a ``ValueError`` that quotes the offending fragment.

The tree (:data:`Predicate`) is made of frozen dataclasses. A :class:`Name` is resolved
only when evaluated: whether ``a.max`` is the max of array ``a`` or an attribute so named
depends on the store. Every node that can fail keeps the ``text`` it was parsed from, for
error messages.
"""

from __future__ import annotations

import ast
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
else:
    from .columns import pd

#: Longest predicate accepted, in characters.
MAX_PREDICATE_CHARS = 20_000

#: The comparison that holds with its operands swapped.
FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

_AST_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}

# ---------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A timestamp literal: ns since the epoch (UTC), and the text it was written as."""

    ns: int
    text: str


@dataclass(frozen=True, slots=True)
class Name:
    """A name: an attribute key, ``ARRAY.FIELD`` or a bare array name (its values)."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class AnyOf:
    """``any(ARRAY)``: the values of an array."""

    array: str
    text: str


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal: None, a bool, int, float or str, a tuple of ints (a shape) or a
    :class:`Timestamp`."""

    value: Any
    text: str


Reference = Name | AnyOf
Operand = Name | AnyOf | Literal


@dataclass(frozen=True, slots=True)
class Constant:
    """``True`` or ``False``."""

    value: bool


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``and`` / ``or`` of two or more predicates."""

    op: typing.Literal["and", "or"]
    operands: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``not`` of a predicate."""

    operand: Predicate


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``, a literal always on the right."""

    left: Reference
    op: str  # one of == != < <= > >=
    right: Operand
    text: str


@dataclass(frozen=True, slots=True)
class In:
    """``operand in [values]`` (``not in`` when ``negate``)."""

    operand: Reference
    values: tuple[Any, ...]
    negate: bool
    text: str


CallName = typing.Literal["isnull", "notnull", "isnan"]
_CALLS: dict[str, CallName] = {"isnull": "isnull", "notnull": "notnull", "isnan": "isnan"}


@dataclass(frozen=True, slots=True)
class Call:
    """``isnull(x)`` (also ``x is None``), ``notnull(x)`` (``x is not None``) or ``isnan(x)``."""

    function: CallName
    operand: Reference
    text: str


@dataclass(frozen=True, slots=True)
class Truth:
    """A bare name used as a predicate: a bool that must be True."""

    operand: Reference
    text: str


@dataclass(frozen=True, slots=True)
class KeywordEquals:
    """A ``find(**equals)`` test: equality, None for a missing value, a list (a set, a
    tuple unless the name is a shape) for one of several values."""

    operand: Name
    value: Any
    text: str


Predicate = Constant | BoolOp | Not | Compare | In | Call | Truth | KeywordEquals


def parse(text: str) -> Predicate:
    """The tree of a predicate string; ``ValueError`` for anything outside the language."""
    return _Parser(text).parse()


def keyword_equals(key: str, value: Any) -> KeywordEquals:
    """The test of a ``find(key=value)`` argument."""
    return KeywordEquals(Name(key, key), keyword_literal(value), f"{key}={value!r}")


def references(tree: Predicate) -> tuple[dict[str, str], dict[str, str]]:
    """The names a tree uses (``name -> text``), and the arrays of its ``any()`` calls."""
    names: dict[str, str] = {}
    arrays: dict[str, str] = {}
    _collect_references(tree, names, arrays)
    return names, arrays


def _collect_references(node: Predicate, names: dict[str, str], arrays: dict[str, str]) -> None:
    match node:
        case BoolOp(operands=children):
            for child in children:
                _collect_references(child, names, arrays)
        case Not(operand=child):
            _collect_references(child, names, arrays)
        case Compare(left=left, right=right):
            _note_reference(left, names, arrays)
            _note_reference(right, names, arrays)
        case In(operand=operand) | Call(operand=operand) | Truth(operand=operand) | KeywordEquals(operand=operand):
            _note_reference(operand, names, arrays)


def _note_reference(operand: Operand, names: dict[str, str], arrays: dict[str, str]) -> None:
    if isinstance(operand, Name):
        names.setdefault(operand.name, operand.text)
    elif isinstance(operand, AnyOf):
        arrays.setdefault(operand.array, operand.text)


# ---------------------------------------------------------------- literals


def parse_timestamp(text: str, fragment: str) -> int:
    """ns since the epoch (UTC) of a timestamp string; ``fragment`` is quoted in errors."""
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"invalid predicate: bad timestamp in {fragment!r}: {e}") from None
    if t is pd.NaT:
        raise ValueError(f"invalid predicate: NaT is not a value (use isnull): {fragment!r}")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    try:
        return int(t.as_unit("ns").value)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"invalid predicate: bad timestamp in {fragment!r}: {e}") from None


def keyword_literal(value: Any) -> Any:
    """A ``find(**equals)`` value as a literal of the language (a list or tuple of them)."""
    if isinstance(value, (list, tuple, set, frozenset)):
        if isinstance(value, (set, frozenset)):
            return [keyword_literal(x) for x in value]
        return type(value)(keyword_literal(x) for x in value)
    if isinstance(value, (pd.Timestamp, np.datetime64)) or type(value).__name__ in ("datetime", "date"):
        t = pd.Timestamp(value)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        return Timestamp(int(t.as_unit("ns").value), str(value))
    if isinstance(value, np.generic):
        return value.item()
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return value
    raise TypeError(f"find() cannot match a value of type {type(value).__name__}")


# ---------------------------------------------------------------- the parser


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _skip_string(text: str, i: int) -> int:
    """The end of the string literal starting at ``text[i]`` (the end of ``text`` when it
    is not terminated: the parser reports it)."""
    quote = text[i]
    triple = text[i : i + 3] == quote * 3
    end = quote * 3 if triple else quote
    j = i + len(end)
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text.startswith(end, j):
            return j + len(end)
        if not triple and text[j] == "\n":
            break
        j += 1
    return len(text)


class _Parser:
    """Turn a predicate string into a tree, accepting only the allow-listed syntax."""

    def __init__(self, text: str) -> None:
        self.original = text
        self.quoted: dict[str, str] = {}  # placeholder -> name written in backticks
        self.source = self._unquote(text)

    # ---- backtick quoting
    def _unquote(self, text: str) -> str:
        """``text`` with each backtick-quoted name replaced by a placeholder identifier."""
        prefix = "_q"
        while prefix in text:
            prefix += "q"
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c in "'\"":
                j = _skip_string(text, i)
                out.append(text[i:j])
                i = j
            elif c == "`":
                j = text.find("`", i + 1)
                if j < 0:
                    raise ValueError(f"invalid predicate {self.original!r}: unterminated ` quote at position {i}")
                placeholder = f"{prefix}{len(self.quoted)}_"
                self.quoted[placeholder] = text[i + 1 : j]
                out.append(placeholder)
                i = j + 1
            else:
                out.append(c)
                i += 1
        return "".join(out)

    def restore(self, fragment: str) -> str:
        """A source fragment with the backtick quotes put back."""
        for placeholder, name in self.quoted.items():
            fragment = fragment.replace(placeholder, f"`{name}`")
        return fragment

    def text(self, node: ast.AST) -> str:
        """The predicate text a node was parsed from, as written."""
        segment = ast.get_source_segment(self.source, node)
        return self.restore(segment if segment is not None else ast.dump(node))

    def fail(self, node: ast.AST, why: str) -> ValueError:
        return ValueError(f"invalid predicate: {why}: {_short(self.text(node))!r}")

    # ---- entry
    def parse(self) -> Predicate:
        if len(self.original) > MAX_PREDICATE_CHARS:
            raise ValueError(f"invalid predicate: longer than {MAX_PREDICATE_CHARS} characters")
        try:
            tree = ast.parse(self.source.strip(), mode="eval")
            self.source = self.source.strip()
        except SyntaxError as e:
            raise ValueError(f"invalid predicate {_short(self.restore(self.source))!r}: {e.msg}") from None
        except (RecursionError, MemoryError):
            raise ValueError("invalid predicate: nested too deeply") from None
        except (ValueError, OverflowError) as e:
            raise ValueError(f"invalid predicate {_short(self.original)!r}: {e}") from None
        try:
            return self.predicate(tree.body)
        except RecursionError:
            raise ValueError("invalid predicate: nested too deeply") from None

    # ---- predicates
    def predicate(self, node: ast.expr) -> Predicate:
        if isinstance(node, ast.BoolOp):
            op: typing.Literal["and", "or"] = "and" if isinstance(node.op, ast.And) else "or"
            return BoolOp(op, tuple([self.predicate(v) for v in node.values]))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return Not(self.predicate(node.operand))
            raise self.fail(node, "not a predicate")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            op = "and" if isinstance(node.op, ast.BitAnd) else "or"
            return BoolOp(op, (self.predicate(node.left), self.predicate(node.right)))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            name = self.call_name(node)
            function = _CALLS.get(name)
            if function is None:
                raise self.fail(node, f"{name}() is not a predicate (use isnull, notnull or isnan)")
            if len(node.args) != 1 or node.keywords:
                raise self.fail(node, f"{function}() takes exactly one name")
            return Call(function, self.reference(node.args[0]), self.text(node))
        if isinstance(node, ast.Constant) and type(node.value) is bool:
            return Constant(node.value)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return Truth(self.reference(node), self.text(node))
        raise self.fail(node, f"unsupported {type(node).__name__} (expected a comparison)")

    def compare(self, node: ast.Compare) -> Predicate:
        """A comparison; a chain ``a < b < c`` is the ``and`` of its links."""
        links: list[Predicate] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            text = self.text(node)
            if isinstance(op, (ast.In, ast.NotIn)):
                values = self.members(right)
                links.append(In(self.reference(left), values, isinstance(op, ast.NotIn), text))
            elif isinstance(op, (ast.Is, ast.IsNot)):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise self.fail(node, "'is' only tests for None")
                links.append(Call("isnull" if isinstance(op, ast.Is) else "notnull", self.reference(left), text))
            else:
                links.append(self.comparison(node, left, _AST_OPS[type(op)], right, text))
            left = right
        return links[0] if len(links) == 1 else BoolOp("and", tuple(links))

    def comparison(self, node: ast.Compare, left: ast.expr, op: str, right: ast.expr, text: str) -> Compare:
        """One ``left op right`` link of a comparison, with any literal put on the right."""
        a = self.operand(left)
        b = self.operand(right)
        for side, operand in ((left, a), (right, b)):
            if isinstance(operand, Literal) and operand.value is None:
                raise self.fail(side, "compare with None using 'is None' / 'is not None'")
        if isinstance(a, Literal):
            if isinstance(b, Literal):
                raise self.fail(node, "compares two literals")
            return Compare(b, FLIPPED[op], a, text)
        return Compare(a, op, b, text)

    def members(self, node: ast.expr) -> tuple[Any, ...]:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail(node, "'in' needs a literal list such as ['a', 'b']")
        out = []
        for element in node.elts:
            value = self.literal(element)
            if value is None:
                raise self.fail(element, "None is not a value (use isnull)")
            out.append(value)
        return tuple(out)

    def reference(self, node: ast.expr) -> Reference:
        """A name or ``any(ARRAY)``."""
        if isinstance(node, (ast.Name, ast.Attribute)):
            return Name(self.name(node), self.text(node))
        if isinstance(node, ast.Call) and self.call_name(node) == "any":
            if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], (ast.Name, ast.Attribute)):
                raise self.fail(node, "any() takes exactly one array name")
            return AnyOf(self.name(node.args[0]), self.text(node))
        raise self.fail(node, "expected a name")

    def operand(self, node: ast.expr) -> Operand:
        """A name, ``any(ARRAY)`` or a literal."""
        if isinstance(node, (ast.Name, ast.Attribute)) or (
            isinstance(node, ast.Call) and self.call_name(node) == "any"
        ):
            return self.reference(node)
        return Literal(self.literal(node), self.text(node))

    def call_name(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name) or node.func.id in self.quoted:
            raise self.fail(node, "unsupported call")
        return node.func.id

    def name(self, node: ast.expr) -> str:
        """The full name of a ``Name``/``Attribute`` chain, as written (backticks resolved)."""
        if isinstance(node, ast.Name):
            return self.identifier(node, self.segment(node))
        if isinstance(node, ast.Attribute):
            head = self.name(node.value)
            whole = self.segment(node)
            tail = whole[len(self.segment(node.value)) :].strip()
            if not tail.startswith("."):
                raise self.fail(node, "malformed name")
            return f"{head}.{self.identifier(node, tail[1:].strip())}"
        raise self.fail(node, "expected a name")

    def segment(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.source, node)
        if segment is None:
            raise self.fail(node, "malformed name")
        return segment

    def identifier(self, node: ast.AST, text: str) -> str:
        if text in self.quoted:
            return self.quoted[text]
        if not text.isidentifier() or any(placeholder in text for placeholder in self.quoted):
            raise self.fail(node, "malformed name")
        return text

    def literal(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or type(value) in (bool, int, float, str):
                return value
            raise self.fail(node, f"unsupported literal of type {type(value).__name__}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.literal(node.operand)
            if type(value) not in (int, float):
                raise self.fail(node, "a sign needs a number")
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Tuple):
            values = tuple(self.literal(e) for e in node.elts)
            if not all(type(v) is int and v >= 0 for v in values):
                raise self.fail(node, "a tuple literal is a shape: non-negative ints only")
            return values
        if isinstance(node, ast.Call):
            return self.literal_call(node)
        raise self.fail(node, f"unsupported {type(node).__name__} (expected a literal)")

    def literal_call(self, node: ast.Call) -> Any:
        """``ts('...')``, ``timestamp('...')``, ``float('nan')`` or ``float('inf')``."""
        function = self.call_name(node)
        if function not in ("ts", "timestamp", "float"):
            raise self.fail(node, f"unsupported function {function}()")
        if len(node.args) != 1 or node.keywords or not (
            isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is str
        ):
            raise self.fail(node, f"{function}() takes one string literal")
        text = node.args[0].value
        if function == "float":
            if text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
                raise self.fail(node, "float() only spells nan and inf")
            return float(text)
        return Timestamp(parse_timestamp(text, self.text(node)), text)
