"""Evaluating a predicate tree over the catalogue columns, vectorised with numpy.

Every node evaluates to two masks over the live datasets, ``(certain, possible)``: the
datasets for which it certainly holds and those for which it may hold. They are equal
except under a comparison with an array's values (``temperature > 30``: "some value of
the array"), which is decided from the array's min and max; ``not`` swaps them, so the
final ``possible`` mask never leaves out a match.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .columns import EXACT_FLOAT_INT, KIND_NAMES, Column, Mask, empty_column, nan_mask
from .predicate import (
    FLIPPED,
    BoolOp,
    Call,
    Compare,
    Constant,
    In,
    KeywordEquals,
    Literal,
    Name,
    Not,
    Operand,
    Predicate,
    Reference,
    Timestamp,
    Truth,
    parse_timestamp,
    references,
)
from .source import live_arrays
from .table import ATTR_PREFIX, FIELDS, split_field, table

if TYPE_CHECKING:
    from ..core.atlas import Store

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_NUMERIC = ("int", "uint", "float")


@dataclass(frozen=True, slots=True)
class ArrayValues:
    """The values of an array, known by their range: the min and max columns and the
    declared dtype (null where a dataset does not declare the array)."""

    low: Column
    high: Column
    declared: Column


Resolved = Column | ArrayValues


def evaluate(store: Store, tree: Predicate) -> Mask:
    """The live datasets that possibly satisfy a predicate tree (a bool mask in store order)."""
    names, arrays = references(tree)
    resolver = _Resolver(store, names, arrays)
    return Evaluator(resolver.n, resolver.resolve).evaluate(tree)[1]


class _Resolver:
    """The columns of the names a predicate uses, read in one pass over the metadata."""

    def __init__(self, store: Store, names: dict[str, str], arrays: dict[str, str]) -> None:
        self.live = live = live_arrays(store)
        fields: dict[str, set[str]] = {}
        attribute_keys: dict[str, None] = {}
        for name in names:
            field = split_field(name, live)
            if field is not None:
                fields.setdefault(field[0], set()).add(field[1])
                continue
            attribute_keys[name] = None
            if name.startswith(ATTR_PREFIX):
                attribute_keys[name[len(ATTR_PREFIX) :]] = None
            if name in live:
                fields.setdefault(name, set()).update(("min", "max", "dtype"))
        for name, text in arrays.items():
            if name not in live:
                raise ValueError(f"invalid predicate: no array named {name!r}: {text!r}")
            fields.setdefault(name, set()).update(("min", "max", "dtype"))
        self.table = table(store, list(attribute_keys), fields)
        self.n = self.table.n
        self.resolved: dict[str, Resolved] = {}

    def attribute(self, key: str) -> Column | None:
        column = self.table.attributes.get(key)
        return None if column is None or column.mask.all() else column

    def resolve(self, name: str, text: str) -> Resolved:
        """What a name stands for: a field, an attribute, or an array's values."""
        hit = self.resolved.get(name)
        if hit is not None:
            return hit
        field = split_field(name, self.live)
        column = self.attribute(name)
        shadowed = self.attribute(name[len(ATTR_PREFIX) :]) if name.startswith(ATTR_PREFIX) else None
        out: Resolved
        if field is not None:
            out = self.table.arrays[field[0]][field[1]]
        elif column is not None:
            out = column
        elif shadowed is not None:
            out = shadowed
        elif name in self.live:
            columns = self.table.arrays[name]
            out = ArrayValues(columns["min"], columns["max"], columns["dtype"])
        elif self.n == 0:  # an empty store knows no names, and nothing can match anyway
            out = empty_column(0, "null")
        else:
            raise ValueError(
                f"invalid predicate: unknown name {text!r}: no dataset has an attribute {name!r} "
                f"and no array is named so (array fields are ARRAY.{', ARRAY.'.join(FIELDS)})"
            )
        self.resolved[name] = out
        return out


class Evaluator:
    """Evaluate a predicate tree to ``(certain, possible)`` masks over ``n`` datasets;
    ``resolve(name, text)`` gives what a name stands for."""

    def __init__(self, n: int, resolve: Callable[[str, str], Resolved]) -> None:
        self.n = n
        self.resolve = resolve

    def evaluate(self, node: Predicate) -> tuple[Mask, Mask]:
        """The ``(certain, possible)`` masks of a node."""
        match node:
            case Constant(value):
                mask = np.full(self.n, value, dtype=bool)
                return mask, mask
            case BoolOp(op, operands):
                parts = [self.evaluate(child) for child in operands]
                combine = np.logical_and if op == "and" else np.logical_or
                certain = parts[0][0].copy()
                possible = parts[0][1].copy()
                for part_certain, part_possible in parts[1:]:
                    combine(certain, part_certain, out=certain)
                    combine(possible, part_possible, out=possible)
                return certain, possible
            case Not(operand):
                certain, possible = self.evaluate(operand)
                return ~possible, ~certain
            case Compare():
                return self.compare(node)
            case In():
                return self.membership(node)
            case KeywordEquals():
                return self.keyword_equals(node)
            case Call():
                return self.call(node)
            case Truth():
                return self.truth(node)
        raise TypeError(f"not a predicate node: {node!r}")

    def reference(self, operand: Reference) -> Resolved:
        """What a name or ``any(ARRAY)`` stands for."""
        if isinstance(operand, Name):
            return self.resolve(operand.name, operand.text)
        resolved = self.resolve(operand.array, operand.text)
        if not isinstance(resolved, ArrayValues):
            raise ValueError(f"invalid predicate: any() needs an array name: {operand.text!r}")
        return resolved

    def operand(self, operand: Operand) -> Resolved | Literal:
        """What an operand stands for (a literal stands for itself)."""
        return operand if isinstance(operand, Literal) else self.reference(operand)

    # ---- leaves
    def compare(self, node: Compare) -> tuple[Mask, Mask]:
        """``left op right``: exact over columns, over an array's values from its range."""
        left = self.reference(node.left)
        right = self.operand(node.right)
        if isinstance(left, ArrayValues):
            return self.values_compare(left, node.op, right, node.text)
        if isinstance(right, ArrayValues):
            return self.values_compare(right, FLIPPED[node.op], left, node.text)
        if isinstance(right, Literal):
            mask = self.column_literal(left, node.op, right.value, node.text)
        else:
            mask = self.column_column(left, node.op, right, node.text)
        return mask, mask

    def values_compare(self, values: ArrayValues, op: str, other: Resolved | Literal, text: str) -> tuple[Mask, Mask]:
        """``some value of the array op other``; ``other`` must be a literal."""
        if not isinstance(other, Literal):
            raise ValueError(f"invalid predicate: an array's values can only be compared with a literal: {text!r}")
        return self.any_value(values, op, other.value, text)

    def membership(self, node: In) -> tuple[Mask, Mask]:
        """``x in [...]`` / ``x not in [...]``; a null ``x`` is neither in a list nor outside it."""
        what = self.reference(node.operand)
        if isinstance(what, ArrayValues):
            return self.any_value_in(what, node.values, node.negate, node.text)
        mask = np.zeros(self.n, dtype=bool)
        for value in node.values:
            mask |= self.column_literal(what, "==", value, node.text)
        if node.negate:
            mask = ~mask & ~what.mask
        return mask, mask

    def keyword_equals(self, node: KeywordEquals) -> tuple[Mask, Mask]:
        """Keyword equality of ``find(**equals)``: None is null, a list is membership."""
        what = self.reference(node.operand)
        value = node.value
        if value is None:
            return self.call(Call("isnull", node.operand, node.text))
        if isinstance(value, (list, set, frozenset)) or (
            isinstance(value, tuple) and not (isinstance(what, Column) and what.kind == "shape")
        ):
            return self.membership(In(node.operand, tuple(value), False, node.text))
        return self.compare(Compare(node.operand, "==", Literal(value, node.text), node.text))

    def call(self, node: Call) -> tuple[Mask, Mask]:
        """``isnull(x)``, ``notnull(x)`` or ``isnan(x)``; an array is null where undeclared."""
        what = self.reference(node.operand)
        if node.function == "isnan":
            mask = (nan_mask(what.low) | nan_mask(what.high)) if isinstance(what, ArrayValues) else nan_mask(what)
            return mask, mask
        null = what.declared.mask if isinstance(what, ArrayValues) else what.mask
        mask = null.copy() if node.function == "isnull" else ~null
        return mask, mask

    def truth(self, node: Truth) -> tuple[Mask, Mask]:
        """A bare name: a bool column (or array) that is True."""
        what = self.reference(node.operand)
        column = what.low if isinstance(what, ArrayValues) else what
        if column.kind not in ("bool", "null"):
            raise ValueError(f"invalid predicate: {node.text!r} is not boolean; compare it with a value")
        return self.compare(Compare(node.operand, "==", Literal(True, node.text), node.text))

    # ---- comparisons of columns
    def column_literal(self, column: Column, op: str, literal: Any, text: str) -> Mask:
        """Compare a column with a literal; False where the column is null."""
        kind = column.kind
        if kind == "null":
            return np.zeros(self.n, dtype=bool)
        if kind == "object":
            return python_compare(column, op, literal.ns if isinstance(literal, Timestamp) else literal)
        if kind == "shape":
            if op not in ("==", "!=") or not isinstance(literal, tuple):
                raise ValueError(f"invalid predicate: a shape compares (== or !=) with a tuple of ints: {text!r}")
            return python_compare(column, op, literal)
        literal = _literal_of_kind(kind, literal, text)
        if kind in _NUMERIC or kind == "timestamp":
            mask = exact_compare(column.values, op, literal)
        elif kind == "string":  # trailing blanks are padding, as CF and Argo readers take them
            mask = np.asarray(OPERATORS[op](unpadded(column.values), unpad(literal)), dtype=bool)
        else:
            mask = np.asarray(OPERATORS[op](column.values, literal), dtype=bool)
        return mask & ~column.mask

    def column_column(self, a: Column, op: str, b: Column, text: str) -> Mask:
        """Compare two columns; False where either is null."""
        if a.kind == "null" or b.kind == "null":
            return np.zeros(self.n, dtype=bool)
        if (a.kind in _NUMERIC and b.kind in _NUMERIC) or (
            a.kind == b.kind and a.kind in ("bool", "timestamp", "string")
        ):
            if a.kind != b.kind and "float" not in (a.kind, b.kind):
                x, y = a.values.astype(object), b.values.astype(object)  # int64 vs uint64: exact
            elif a.kind == "string":
                x, y = unpadded(a.values), unpadded(b.values)
            else:
                x, y = a.values, b.values
            with np.errstate(invalid="ignore"):
                mask = np.asarray(OPERATORS[op](x, y), dtype=bool)
        elif a.kind == "object" or b.kind == "object" or (a.kind == b.kind == "shape" and op in ("==", "!=")):
            mask = np.zeros(self.n, dtype=bool)
            compare = OPERATORS[op]
            for i in np.flatnonzero(~(a.mask | b.mask)).tolist():
                try:
                    mask[i] = bool(compare(a.values[i], b.values[i]))
                except TypeError:
                    pass
        else:
            raise ValueError(
                f"invalid predicate: cannot compare {KIND_NAMES[a.kind]} with {KIND_NAMES[b.kind]}: {text!r}"
            )
        return mask & ~a.mask & ~b.mask

    # ---- predicates over an array's values, decided from its min and max
    def any_value(self, values: ArrayValues, op: str, literal: Any, text: str) -> tuple[Mask, Mask]:
        """Whether some non-null value ``x`` of the array has ``x op literal``: (certain, possible)."""
        low, high = values.low, values.high
        has_values = ~low.mask
        if op in (">", ">="):
            certain = self.column_literal(high, op, literal, text)
            return certain, certain | nan_mask(high)
        if op in ("<", "<="):
            certain = self.column_literal(low, op, literal, text)
            return certain, certain | nan_mask(low)
        low_equal = self.column_literal(low, "==", literal, text)
        high_equal = self.column_literal(high, "==", literal, text)
        if op == "!=":
            mask = has_values & ~(low_equal & high_equal)
            return mask, mask
        # ==
        if type(literal) is float and math.isnan(literal):
            none = np.zeros(self.n, dtype=bool)
            return none, none
        certain = low_equal & high_equal
        possible = (self.column_literal(low, "<=", literal, text) | nan_mask(low)) & (
            self.column_literal(high, ">=", literal, text) | nan_mask(high)
        )
        if low.kind == "object":
            possible = has_values.copy()  # values of mixed types: no ordering to rely on
        return certain, possible & has_values

    def any_value_in(
        self, values: ArrayValues, literals: tuple[Any, ...], negate: bool, text: str
    ) -> tuple[Mask, Mask]:
        """Whether some non-null value of the array is one of ``literals`` (not one of them
        when ``negate``): (certain, possible)."""
        if not negate:
            certain = np.zeros(self.n, dtype=bool)
            possible = np.zeros(self.n, dtype=bool)
            for literal in literals:
                literal_certain, literal_possible = self.any_value(values, "==", literal, text)
                certain |= literal_certain
                possible |= literal_possible
            return certain, possible
        # some value outside the set
        low_in = np.zeros(self.n, dtype=bool)
        high_in = np.zeros(self.n, dtype=bool)
        single = np.zeros(self.n, dtype=bool)  # min == max == one of the literals
        for literal in literals:
            low_equal = self.column_literal(values.low, "==", literal, text)
            high_equal = self.column_literal(values.high, "==", literal, text)
            low_in |= low_equal
            high_in |= high_equal
            single |= low_equal & high_equal
        has_values = ~values.low.mask
        return has_values & ~(low_in & high_in), has_values & ~single


#: What pads fixed-width strings (NetCDF char arrays): ignored at the end when comparing.
PADDING = " \0"


def unpad(text: str) -> str:
    """``text`` without its trailing blanks (spaces and NULs)."""
    return text.rstrip(PADDING)


def unpadded(values: np.ndarray) -> np.ndarray:
    """A string column's values without their trailing blanks (nulls, ``None``, stay)."""
    out = values.copy()
    for i, v in enumerate(out.tolist()):
        if type(v) is str and v.endswith((" ", "\0")):
            out[i] = v.rstrip(PADDING)
    return out


def _literal_of_kind(kind: str, literal: Any, text: str) -> Any:
    """A literal as compared with a column of a kind (a timestamp as ns); ValueError when
    the two cannot be compared."""
    bad = False
    if kind in _NUMERIC:
        bad = type(literal) not in (int, float)
    elif kind == "bool":
        bad = type(literal) is not bool
    elif kind == "timestamp":
        if isinstance(literal, Timestamp):
            literal = literal.ns
        elif type(literal) is str:
            literal = parse_timestamp(literal, text)
        bad = type(literal) is not int
    elif kind == "string":
        bad = type(literal) is not str
    if bad:
        shown = f"ts({literal.text!r})" if isinstance(literal, Timestamp) else repr(literal)
        raise ValueError(f"invalid predicate: cannot compare {KIND_NAMES[kind]} values with {shown}: {text!r}")
    return literal


def exact_compare(values: np.ndarray, op: str, literal: int | float) -> np.ndarray:
    """Exact comparison of a numeric numpy column with a Python int or float."""
    compare = OPERATORS[op]
    if values.dtype.kind == "f":
        if type(literal) is int and abs(literal) > EXACT_FLOAT_INT:
            return np.fromiter((bool(compare(v, literal)) for v in values.tolist()), dtype=bool, count=len(values))
        with np.errstate(invalid="ignore"):
            return np.asarray(compare(values, float(literal)), dtype=bool)
    # an integer column
    if type(literal) is float:
        if math.isnan(literal):
            return np.full(len(values), op == "!=", dtype=bool)
        if math.isinf(literal):
            return np.full(len(values), _beyond_every_value(op, literal > 0), dtype=bool)
        if not literal.is_integer():
            below = math.floor(literal)
            if op == "==":
                return np.zeros(len(values), dtype=bool)
            if op == "!=":
                return np.ones(len(values), dtype=bool)
            if op in (">", ">="):
                return exact_compare(values, ">", below)
            return exact_compare(values, "<=", below)
        literal = int(literal)
    info = np.iinfo(values.dtype)
    if literal > int(info.max) or literal < int(info.min):
        return np.full(len(values), _beyond_every_value(op, literal > int(info.max)), dtype=bool)
    return np.asarray(compare(values, values.dtype.type(literal)), dtype=bool)


def _beyond_every_value(op: str, above: bool) -> bool:
    """``value op literal`` for every value, when the literal is above (or below) them all."""
    return {"==": False, "!=": True, "<": above, "<=": above, ">": not above, ">=": not above}[op]


def python_compare(column: Column, op: str, literal: Any) -> np.ndarray:
    """Element-wise Python comparison; a type mismatch is False (as is a null)."""
    compare = OPERATORS[op]
    out = np.zeros(len(column.values), dtype=bool)
    values = column.values
    for i in np.flatnonzero(~column.mask).tolist():
        try:
            out[i] = bool(compare(values[i], literal))
        except TypeError:
            pass
    return out
