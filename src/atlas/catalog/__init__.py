"""The catalogue: find datasets by attributes and statistics without reading their data.

``Atlas.catalog()`` tabulates dataset attributes and per-array metadata (dtype, shape and the
statistics computed at flush) as a ``pandas.DataFrame``; ``Atlas.find()`` selects dataset
names with a small, safe predicate language over the same columns.

Both are built from the in-memory metadata alone and never read array data. Only the
requested attributes and arrays are picked out, column by column with C-level iteration over
the manifest records as they were loaded (they are not materialised into dataset objects).
Those records never change, so what was read from them is remembered by the handle and later
calls only re-read datasets that were materialised since (opened, written, re-created).
The manifest itself is untouched: no index or column is added to the metadata layout.

The predicate language
----------------------

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
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .columns import EXACT_FLOAT_INT as _EXACT_FLOAT_INT
from .columns import KIND_NAMES as _KIND_NAMES
from .columns import Column as _Col
from .columns import empty_column as _empty
from .columns import nan_mask as _nan
from .source import live_arrays as _live_arrays
from .table import ATTR_PREFIX, FIELDS, table
from .table import name_list as _name_list
from .table import split_field as _split_field

if TYPE_CHECKING:
    import pandas as pd

    from ..core.atlas import Store as Atlas
else:
    from .columns import pd

__all__ = ["FIELDS", "catalog", "find"]

_MAX_EXPR_CHARS = 20_000

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_AST_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}

Mask = np.ndarray  # 1-D bool, one entry per live dataset



# ============================================================================ the predicate language


class _Ts:
    """A timestamp literal (ns since the epoch)."""

    __slots__ = ("ns", "text")

    def __init__(self, ns: int, text: str) -> None:
        self.ns = ns
        self.text = text


# IR nodes are tuples:
#   ("const", bool) ("and", [nodes]) ("or", [nodes]) ("not", node)
#   ("cmp", operand, op, operand, frag)      operands: ("name", N, frag) ("any", A, frag) ("lit", v, frag)
#   ("in", operand, [values], negate, frag)  ("eq", operand, value, frag) (keyword equality)
#   ("isnull"|"notnull"|"isnan"|"truth", operand, frag)
Node = tuple[Any, ...]


class _Parser:
    """Turn a predicate string into IR nodes, accepting only the allow-listed syntax."""

    def __init__(self, text: str) -> None:
        self.original = text
        self.quoted: dict[str, str] = {}
        self.source = self._unquote(text)

    # ---- backtick quoting
    def _unquote(self, text: str) -> str:
        prefix = "_q"
        while prefix in text:
            prefix += "q"
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c in "'\"":
                j = self._skip_string(text, i)
                out.append(text[i:j])
                i = j
            elif c == "`":
                j = text.find("`", i + 1)
                if j < 0:
                    raise ValueError(f"invalid predicate {self.original!r}: unterminated ` quote at position {i}")
                ph = f"{prefix}{len(self.quoted)}_"
                self.quoted[ph] = text[i + 1 : j]
                out.append(ph)
                i = j + 1
            else:
                out.append(c)
                i += 1
        return "".join(out)

    @staticmethod
    def _skip_string(text: str, i: int) -> int:
        q = text[i]
        triple = text[i : i + 3] == q * 3
        end = q * 3 if triple else q
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
        return len(text)  # unterminated: the parser reports it

    def restore(self, fragment: str) -> str:
        """A source fragment with the backtick quotes put back."""
        for ph, name in self.quoted.items():
            fragment = fragment.replace(ph, f"`{name}`")
        return fragment

    def frag(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.source, node)
        return self.restore(seg if seg is not None else ast.dump(node))

    def fail(self, node: ast.AST, why: str) -> ValueError:
        return ValueError(f"invalid predicate: {why}: {_short(self.frag(node))!r}")

    # ---- entry
    def parse(self) -> Node:
        if len(self.original) > _MAX_EXPR_CHARS:
            raise ValueError(f"invalid predicate: longer than {_MAX_EXPR_CHARS} characters")
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
            return self.pred(tree.body)
        except RecursionError:
            raise ValueError("invalid predicate: nested too deeply") from None

    # ---- predicates
    def pred(self, node: ast.expr) -> Node:
        if isinstance(node, ast.BoolOp):
            kind = "and" if isinstance(node.op, ast.And) else "or"
            return (kind, [self.pred(v) for v in node.values])
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return ("not", self.pred(node.operand))
            raise self.fail(node, "not a predicate")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            kind = "and" if isinstance(node.op, ast.BitAnd) else "or"
            return (kind, [self.pred(node.left), self.pred(node.right)])
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            fname = self.call_name(node)
            if fname in ("isnull", "notnull", "isnan"):
                if len(node.args) != 1 or node.keywords:
                    raise self.fail(node, f"{fname}() takes exactly one name")
                return (fname, self.operand(node.args[0], allow_literal=False), self.frag(node))
            raise self.fail(node, f"{fname}() is not a predicate (use isnull, notnull or isnan)")
        if isinstance(node, ast.Constant) and type(node.value) is bool:
            return ("const", node.value)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return ("truth", self.operand(node, allow_literal=False), self.frag(node))
        raise self.fail(node, f"unsupported {type(node).__name__} (expected a comparison)")

    def compare(self, node: ast.Compare) -> Node:
        parts: list[Node] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            frag = self.frag(node)
            if isinstance(op, (ast.In, ast.NotIn)):
                values = self.members(right)
                parts.append(("in", self.operand(left, allow_literal=False), values, isinstance(op, ast.NotIn), frag))
            elif isinstance(op, (ast.Is, ast.IsNot)):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise self.fail(node, "'is' only tests for None")
                kind = "isnull" if isinstance(op, ast.Is) else "notnull"
                parts.append((kind, self.operand(left, allow_literal=False), frag))
            else:
                sop = _AST_OPS[type(op)]
                a = self.operand(left)
                b = self.operand(right)
                for side, x in ((left, a), (right, b)):
                    if x[0] == "lit" and x[1] is None:
                        raise self.fail(side, "compare with None using 'is None' / 'is not None'")
                if a[0] == "lit" and b[0] == "lit":
                    raise self.fail(node, "compares two literals")
                if a[0] == "lit":
                    a, b, sop = b, a, _FLIP[sop]
                parts.append(("cmp", a, sop, b, frag))
            left = right
        return parts[0] if len(parts) == 1 else ("and", parts)

    def members(self, node: ast.expr) -> list[Any]:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail(node, "'in' needs a literal list such as ['a', 'b']")
        out = []
        for e in node.elts:
            v = self.literal(e)
            if v is None:
                raise self.fail(e, "None is not a value (use isnull)")
            out.append(v)
        return out

    def operand(self, node: ast.expr, allow_literal: bool = True) -> Node:
        if isinstance(node, (ast.Name, ast.Attribute)):
            return ("name", self.name(node), self.frag(node))
        if isinstance(node, ast.Call) and self.call_name(node) == "any":
            if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], (ast.Name, ast.Attribute)):
                raise self.fail(node, "any() takes exactly one array name")
            return ("any", self.name(node.args[0]), self.frag(node))
        if not allow_literal:
            raise self.fail(node, "expected a name")
        return ("lit", self.literal(node), self.frag(node))

    def call_name(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name) or node.func.id in self.quoted:
            raise self.fail(node, "unsupported call")
        return node.func.id

    def name(self, node: ast.expr) -> str:
        """The full name of a ``Name``/``Attribute`` chain, as written (backticks resolved)."""
        if isinstance(node, ast.Name):
            return self.ident(node, self.segment_text(node))
        if isinstance(node, ast.Attribute):
            head = self.name(node.value)
            whole = self.segment_text(node)
            tail = whole[len(self.segment_text(node.value)) :].strip()
            if not tail.startswith("."):
                raise self.fail(node, "malformed name")
            return f"{head}.{self.ident(node, tail[1:].strip())}"
        raise self.fail(node, "expected a name")

    def segment_text(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.source, node)
        if seg is None:
            raise self.fail(node, "malformed name")
        return seg

    def ident(self, node: ast.AST, text: str) -> str:
        if text in self.quoted:
            return self.quoted[text]
        if not text.isidentifier() or any(ph in text for ph in self.quoted):
            raise self.fail(node, "malformed name")
        return text

    def literal(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            v = node.value
            if v is None or type(v) in (bool, int, float, str):
                return v
            raise self.fail(node, f"unsupported literal of type {type(v).__name__}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.literal(node.operand)
            if type(v) not in (int, float):
                raise self.fail(node, "a sign needs a number")
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Tuple):
            vals = tuple(self.literal(e) for e in node.elts)
            if not all(type(v) is int and v >= 0 for v in vals):
                raise self.fail(node, "a tuple literal is a shape: non-negative ints only")
            return vals
        if isinstance(node, ast.Call):
            fname = self.call_name(node)
            if fname in ("ts", "timestamp", "float"):
                if len(node.args) != 1 or node.keywords or not (
                    isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is str
                ):
                    raise self.fail(node, f"{fname}() takes one string literal")
                text = node.args[0].value
                if fname == "float":
                    if text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
                        raise self.fail(node, "float() only spells nan and inf")
                    return float(text)
                return _Ts(_parse_ts(text, self.frag(node)), text)
            raise self.fail(node, f"unsupported function {fname}()")
        raise self.fail(node, f"unsupported {type(node).__name__} (expected a literal)")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_ts(text: str, frag: str) -> int:
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"invalid predicate: bad timestamp in {frag!r}: {e}") from None
    if t is pd.NaT:
        raise ValueError(f"invalid predicate: NaT is not a value (use isnull): {frag!r}")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    try:
        return int(t.as_unit("ns").value)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"invalid predicate: bad timestamp in {frag!r}: {e}") from None


def _names(node: Node, out: dict[str, str], anys: dict[str, str]) -> None:
    """Collect operand names (``name -> fragment``) and ``any()`` arrays of an IR tree."""
    tag = node[0]
    if tag in ("and", "or"):
        for c in node[1]:
            _names(c, out, anys)
    elif tag == "not":
        _names(node[1], out, anys)
    elif tag in ("cmp", "in", "eq", "isnull", "notnull", "isnan", "truth"):
        ops = [node[1]] + ([node[3]] if tag == "cmp" else [])
        for o in ops:
            if o[0] == "name":
                out.setdefault(o[1], o[2])
            elif o[0] == "any":
                anys.setdefault(o[1], o[2])


# ============================================================================ evaluation


def _is_num(v: Any) -> bool:
    return type(v) in (int, float)


def _num_cmp(values: np.ndarray, op: str, c: int | float) -> np.ndarray:
    """Exact comparison of a numeric numpy column with a Python int or float."""
    f = _OPS[op]
    if values.dtype.kind == "f":
        if type(c) is int and abs(c) > _EXACT_FLOAT_INT:
            return np.fromiter((bool(f(v, c)) for v in values.tolist()), dtype=bool, count=len(values))
        with np.errstate(invalid="ignore"):
            return np.asarray(f(values, float(c)), dtype=bool)
    # integer column
    if type(c) is float:
        if math.isnan(c):
            return np.full(len(values), op == "!=", dtype=bool)
        if math.isinf(c):
            below = c > 0  # every value is below +inf
            res = {"==": False, "!=": True, "<": below, "<=": below, ">": not below, ">=": not below}[op]
            return np.full(len(values), res, dtype=bool)
        if c.is_integer():
            c = int(c)
        else:
            fl = math.floor(c)
            if op == "==":
                return np.zeros(len(values), dtype=bool)
            if op == "!=":
                return np.ones(len(values), dtype=bool)
            if op in (">", ">="):
                return _num_cmp(values, ">", fl)
            return _num_cmp(values, "<=", fl)
    info = np.iinfo(values.dtype)
    lo, hi = int(info.min), int(info.max)
    if c > hi or c < lo:
        above = c > hi  # the literal is above every value
        res = {"==": False, "!=": True, "<": above, "<=": above, ">": not above, ">=": not above}[op]
        return np.full(len(values), res, dtype=bool)
    return np.asarray(f(values, values.dtype.type(c)), dtype=bool)


def _py_cmp(col: _Col, op: str, c: Any) -> np.ndarray:
    """Element-wise Python comparison; a type mismatch is False."""
    f = _OPS[op]
    out = np.zeros(len(col.values), dtype=bool)
    vals = col.values
    for i in np.flatnonzero(~col.mask).tolist():
        try:
            out[i] = bool(f(vals[i], c))
        except TypeError:
            pass
    return out


class _Evaluator:
    """Evaluate IR nodes to (definitely, possibly) masks over the live datasets."""

    def __init__(self, n: int, resolve: Callable[[str, str], tuple[str, Any]]) -> None:
        self.n = n
        self.resolve = resolve  # name, fragment -> ("col", _Col) | ("values", (lo, hi, declared))

    # ---- boolean structure
    def eval(self, node: Node) -> tuple[Mask, Mask]:
        tag = node[0]
        if tag == "const":
            m = np.full(self.n, node[1], dtype=bool)
            return m, m
        if tag == "and" or tag == "or":
            parts = [self.eval(c) for c in node[1]]
            red = np.logical_and if tag == "and" else np.logical_or
            d = parts[0][0].copy()
            p = parts[0][1].copy()
            for pd_, pp in parts[1:]:
                red(d, pd_, out=d)
                red(p, pp, out=p)
            return d, p
        if tag == "not":
            d, p = self.eval(node[1])
            return ~p, ~d
        return getattr(self, "_" + tag)(node)

    def _operand(self, o: Node) -> tuple[str, Any]:
        if o[0] == "name":
            return self.resolve(o[1], o[2])
        if o[0] == "any":
            kind, what = self.resolve(o[1], o[2])
            if kind != "values":
                raise ValueError(f"invalid predicate: any() needs an array name: {o[2]!r}")
            return kind, what
        return "lit", o[1]

    # ---- leaves
    def _cmp(self, node: Node) -> tuple[Mask, Mask]:
        _, a, op, b, frag = node
        ka, va = self._operand(a)
        kb, vb = self._operand(b)
        if kb == "values" and ka != "values":
            ka, va, kb, vb, op = kb, vb, ka, va, _FLIP[op]
        if ka == "values":
            if kb != "lit":
                raise ValueError(f"invalid predicate: an array's values can only be compared with a literal: {frag!r}")
            return self._any(va, op, vb, frag)
        if kb == "lit":
            m = self._col_lit(va, op, vb, frag)
        else:
            m = self._col_col(va, op, vb, frag)
        return m, m

    def _in(self, node: Node) -> tuple[Mask, Mask]:
        _, o, values, negate, frag = node
        kind, what = self._operand(o)
        if kind == "values":
            return self._any_in(what, values, negate, frag)
        m = np.zeros(self.n, dtype=bool)
        for v in values:
            m |= self._col_lit(what, "==", v, frag)
        if negate:
            m = ~m & ~what.mask
        return m, m

    def _eq(self, node: Node) -> tuple[Mask, Mask]:
        """Keyword equality of ``find(**equals)``: None is null, a list is membership."""
        _, o, value, frag = node
        kind, what = self._operand(o)
        if value is None:
            return self._isnull(("isnull", o, frag))
        if isinstance(value, (list, set, frozenset)) or (
            isinstance(value, tuple) and not (kind == "col" and what.kind == "shape")
        ):
            return self._in(("in", o, list(value), False, frag))
        return self._cmp(("cmp", o, "==", ("lit", value, frag), frag))

    def _isnull(self, node: Node) -> tuple[Mask, Mask]:
        kind, what = self._operand(node[1])
        m = what[2].mask if kind == "values" else what.mask
        m = m.copy() if node[0] == "isnull" else ~m
        return m, m

    _notnull = _isnull

    def _isnan(self, node: Node) -> tuple[Mask, Mask]:
        kind, what = self._operand(node[1])
        m = (_nan(what[0]) | _nan(what[1])) if kind == "values" else _nan(what)
        return m, m

    def _truth(self, node: Node) -> tuple[Mask, Mask]:
        _, o, frag = node
        kind, what = self._operand(o)
        col = what[0] if kind == "values" else what
        if col.kind not in ("bool", "null"):
            raise ValueError(f"invalid predicate: {frag!r} is not boolean; compare it with a value")
        return self._cmp(("cmp", o, "==", ("lit", True, frag), frag))

    # ---- comparisons
    def _col_lit(self, col: _Col, op: str, lit: Any, frag: str) -> Mask:
        """Compare a column with a literal; False where the column is null."""
        kind = col.kind
        if kind == "null":
            return np.zeros(self.n, dtype=bool)
        if kind == "object":
            return _py_cmp(col, op, lit.ns if isinstance(lit, _Ts) else lit)
        if kind == "shape":
            if op not in ("==", "!=") or not isinstance(lit, tuple):
                raise ValueError(f"invalid predicate: a shape compares (== or !=) with a tuple of ints: {frag!r}")
            return _py_cmp(col, op, lit)
        bad = False
        if kind in ("int", "uint", "float"):
            bad = not _is_num(lit)
        elif kind == "bool":
            bad = type(lit) is not bool
        elif kind == "timestamp":
            if isinstance(lit, _Ts):
                lit = lit.ns
            elif type(lit) is str:
                lit = _parse_ts(lit, frag)
            bad = type(lit) is not int
        elif kind == "string":
            bad = type(lit) is not str
        if bad:
            shown = f"ts({lit.text!r})" if isinstance(lit, _Ts) else repr(lit)
            raise ValueError(
                f"invalid predicate: cannot compare {_KIND_NAMES[kind]} values with {shown}: {frag!r}"
            )
        if kind in ("int", "uint", "float", "timestamp"):
            m = _num_cmp(col.values, op, lit)
        else:
            m = np.asarray(_OPS[op](col.values, lit), dtype=bool)
        return m & ~col.mask

    def _col_col(self, a: _Col, op: str, b: _Col, frag: str) -> Mask:
        num = ("int", "uint", "float")
        if a.kind == "null" or b.kind == "null":
            return np.zeros(self.n, dtype=bool)
        if (a.kind in num and b.kind in num) or (a.kind == b.kind and a.kind in ("bool", "timestamp", "string")):
            if a.kind != b.kind and "float" not in (a.kind, b.kind):
                x, y = a.values.astype(object), b.values.astype(object)  # int64 vs uint64: exact
            else:
                x, y = a.values, b.values
            with np.errstate(invalid="ignore"):
                m = np.asarray(_OPS[op](x, y), dtype=bool)
        elif a.kind == "object" or b.kind == "object" or (a.kind == b.kind == "shape" and op in ("==", "!=")):
            m = np.zeros(self.n, dtype=bool)
            f = _OPS[op]
            for i in np.flatnonzero(~(a.mask | b.mask)).tolist():
                try:
                    m[i] = bool(f(a.values[i], b.values[i]))
                except TypeError:
                    pass
        else:
            raise ValueError(
                f"invalid predicate: cannot compare {_KIND_NAMES[a.kind]} with {_KIND_NAMES[b.kind]}: {frag!r}"
            )
        return m & ~a.mask & ~b.mask

    # ---- predicates over an array's values, decided from its min and max
    def _any(self, v: tuple[_Col, _Col, _Col], op: str, c: Any, frag: str) -> tuple[Mask, Mask]:
        """Whether some non-null value ``x`` of the array has ``x op c``: (certain, possible)."""
        lo, hi, _ = v
        has = ~lo.mask
        if op in (">", ">="):
            d = self._col_lit(hi, op, c, frag)
            return d, d | _nan(hi)
        if op in ("<", "<="):
            d = self._col_lit(lo, op, c, frag)
            return d, d | _nan(lo)
        eq_lo = self._col_lit(lo, "==", c, frag)
        eq_hi = self._col_lit(hi, "==", c, frag)
        if op == "!=":
            m = has & ~(eq_lo & eq_hi)
            return m, m
        # ==
        if type(c) is float and math.isnan(c):
            z = np.zeros(self.n, dtype=bool)
            return z, z
        d = eq_lo & eq_hi
        p = (self._col_lit(lo, "<=", c, frag) | _nan(lo)) & (self._col_lit(hi, ">=", c, frag) | _nan(hi))
        if lo.kind == "object":
            p = has.copy()  # values of mixed types: no ordering to rely on
        return d, p & has

    def _any_in(self, v: tuple[_Col, _Col, _Col], values: list[Any], negate: bool, frag: str) -> tuple[Mask, Mask]:
        lo, hi, _ = v
        has = ~lo.mask
        if not negate:
            d = np.zeros(self.n, dtype=bool)
            p = np.zeros(self.n, dtype=bool)
            for c in values:
                dc, pc = self._any(v, "==", c, frag)
                d |= dc
                p |= pc
            return d, p
        # some value outside the set
        lo_in = np.zeros(self.n, dtype=bool)
        hi_in = np.zeros(self.n, dtype=bool)
        single = np.zeros(self.n, dtype=bool)
        for c in values:
            a = self._col_lit(lo, "==", c, frag)
            b = self._col_lit(hi, "==", c, frag)
            lo_in |= a
            hi_in |= b
            single |= a & b
        return has & ~(lo_in & hi_in), has & ~single



def _kw_value(v: Any) -> Any:
    """Normalise a ``find(**equals)`` value to a predicate literal."""
    if isinstance(v, (list, tuple, set, frozenset)):
        return type(v)(_kw_value(x) for x in v) if not isinstance(v, (set, frozenset)) else [_kw_value(x) for x in v]
    if isinstance(v, (pd.Timestamp, np.datetime64)) or type(v).__name__ in ("datetime", "date"):
        t = pd.Timestamp(v)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        return _Ts(int(t.as_unit("ns").value), str(v))
    if isinstance(v, np.generic):
        return v.item()
    for t in (bool, int, float, str):
        if isinstance(v, t):
            return t(v)
    if v is None:
        return v
    raise TypeError(f"find() cannot match a value of type {type(v).__name__}")



def catalog(
    atlas: Atlas,
    arrays: Iterable[str] | None = None,
    attributes: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A table of the live datasets: one row each, indexed by name, in store order.

    Columns are, first, the dataset ``attributes`` (all keys present in any dataset when
    ``None``, in order of first appearance; ``[]`` for none), then, for each of ``arrays``
    (every array name in the store, sorted, when ``None``; ``[]`` for none), the columns
    ``ARRAY.dtype``, ``ARRAY.shape``, ``ARRAY.min``, ``ARRAY.max``, ``ARRAY.null_count``
    and ``ARRAY.row_count``. An attribute whose key equals such a column name for an array
    of the store is listed as ``attr:KEY`` instead.

    Typing: integer values are ``Int64`` (``UInt64`` for unsigned 64-bit data), floats
    ``Float64`` (a NaN value stays NaN, distinct from a missing value), bools ``boolean``,
    strings and dtype names ``string``, timestamps ``datetime64[ns]``, shapes tuples
    (``object``). Missing values (dataset without the attribute or array, array without
    statistics, all-null array without min/max) are ``NA``/``NaT``. A column whose values
    mix kinds (an attribute that is an int in one dataset and a str in another) is an
    ``object`` column of exact Python values. A timestamp value of exactly NaT
    (``-2**63``) cannot be told apart from a missing one in the frame.

    Statistics are those of ``array_stats``: computed at ``flush()``, so between flushes
    they are those of the last flush (``NA`` for arrays never flushed). Which datasets,
    attributes and arrays exist is always the live state of this handle. Only metadata
    is used: no array data is read.
    """
    arr_names = _name_list(arrays, "arrays")
    attr_names = _name_list(attributes, "attributes")
    live = _live_arrays(atlas)
    if arr_names is None:
        arr_names = sorted(live)
    t = table(atlas, attr_names, {a: FIELDS for a in arr_names})
    names, acols, xcols = t.names, t.attributes, t.arrays
    columns: dict[str, Any] = {}
    for key, col in acols.items():
        cname = ATTR_PREFIX + key if _split_field(key, live) is not None else key
        if cname in columns:
            raise ValueError(f"attribute {key!r} and attribute {cname!r} would share a catalogue column")
        columns[cname] = col.to_pandas()
    for a in arr_names:
        for f in FIELDS:
            cname = f"{a}.{f}"
            if cname in columns:
                raise ValueError(f"two catalogue columns would be named {cname!r}")
            columns[cname] = xcols[a][f].to_pandas()
    index = pd.Index(names, name="dataset", dtype=object)
    if not columns:
        return pd.DataFrame(index=index)
    return pd.DataFrame(columns, index=index, copy=False)

def find(atlas: Atlas, where: str | None = None, **equals: Any) -> list[str]:
    """Names of the live datasets matching a predicate, in store order.

    ``where`` is an expression over catalogue names (see :meth:`catalog`), e.g.
    ``"temperature.max > 30 and depth.max >= 1000 and station == 'KNMI'"``;
    keyword arguments add equality tests (``station="KNMI"``, a list means "one of",
    ``None`` means "missing"; dotted names go through ``**{"depth.max": 2000}``). All
    conditions must hold. The result can be passed straight to ``read_array_across``.

    Semantics:

    * ``NAME`` is an attribute key; ``ARRAY.min``, ``ARRAY.max``, ``ARRAY.null_count``,
      ``ARRAY.row_count``, ``ARRAY.dtype`` and ``ARRAY.shape`` are an array's catalogue
      fields (an attribute shadowed by one is ``attr:KEY``). Parts that are not Python
      identifiers are quoted with backticks. An unknown name is a ``ValueError``.
    * Predicates on attributes and on statistics are exact: ``temperature.max > 30`` holds
      exactly for the datasets whose stored max exceeds 30. Comparisons follow IEEE for
      floats (a NaN max compares false; ``isnan(temperature.max)`` finds it) and compare
      ints, uints and floats exactly. A string compares with a timestamp as a date.
    * A bare array name (or ``any(ARRAY)``) in a comparison asks whether *some* non-null
      value of the array satisfies it: ``temperature > 30``, ``station in ['A', 'B']``.
      This needs values inside the data, so it is decided from min/max and the answer is
      a conservative superset: a dataset whose data may match is returned, one whose data
      matches is never left out (for ``>``, ``>=``, ``<``, ``<=`` and ``!=`` without
      NaN values the answer is exact). ``not`` keeps this guarantee.
    * A comparison involving a missing value (no such attribute or array, no statistics)
      is false, ``!=`` included; ``not`` negates the truth of its operand. Test for
      missing values with ``isnull(x)`` / ``notnull(x)`` / ``x is None``;
      ``isnull(ARRAY)`` holds for datasets that do not declare the array.
    * Statistics are as of the last ``flush()``, as in ``array_stats``.

    Invalid predicates raise ``ValueError`` naming the offending fragment; the
    expression is parsed, never evaluated by Python.
    """
    nodes: list[Node] = []
    if where is not None:
        if not isinstance(where, str):
            raise TypeError(f"where must be a str predicate, not {type(where).__name__}")
        if where.strip():
            nodes.append(_Parser(where).parse())
    for key, value in equals.items():
        nodes.append(("eq", ("name", key, key), _kw_value(value), f"{key}={value!r}"))
    if not nodes:
        return atlas.list_datasets()
    tree: Node = nodes[0] if len(nodes) == 1 else ("and", nodes)
    mask = _evaluate(atlas, tree)
    names = atlas.list_datasets()
    return [names[i] for i in np.flatnonzero(mask).tolist()]

def _evaluate(atlas: Atlas, tree: Node) -> Mask:
    """The datasets that possibly satisfy an IR tree."""
    refs: dict[str, str] = {}
    anys: dict[str, str] = {}
    _names(tree, refs, anys)
    live = _live_arrays(atlas)
    fields: dict[str, set[str]] = {}
    attr_keys: dict[str, None] = {}
    for name in refs:
        sf = _split_field(name, live)
        if sf is not None:
            fields.setdefault(sf[0], set()).add(sf[1])
            continue
        attr_keys[name] = None
        if name.startswith(ATTR_PREFIX):
            attr_keys[name[len(ATTR_PREFIX) :]] = None
        if name in live:
            fields.setdefault(name, set()).update(("min", "max", "dtype"))
    for name, frag in anys.items():
        if name not in live:
            raise ValueError(f"invalid predicate: no array named {name!r}: {frag!r}")
        fields.setdefault(name, set()).update(("min", "max", "dtype"))
    t = table(atlas, list(attr_keys), fields)
    names, acols, xcols = t.names, t.attributes, t.arrays
    n = len(names)
    cache: dict[str, tuple[str, Any]] = {}

    def attr(key: str) -> _Col | None:
        col = acols.get(key)
        return None if col is None or col.mask.all() else col

    def resolve(name: str, frag: str) -> tuple[str, Any]:
        hit = cache.get(name)
        if hit is not None:
            return hit
        sf = _split_field(name, live)
        col = attr(name)
        shadowed = attr(name[len(ATTR_PREFIX) :]) if name.startswith(ATTR_PREFIX) else None
        if sf is not None:
            out: tuple[str, Any] = ("col", xcols[sf[0]][sf[1]])
        elif col is not None:
            out = ("col", col)
        elif shadowed is not None:
            out = ("col", shadowed)
        elif name in live:
            cols = xcols[name]
            out = ("values", (cols["min"], cols["max"], cols["dtype"]))
        elif n == 0:  # an empty store knows no names, and nothing can match anyway
            out = ("col", _empty(0, "null"))
        else:
            raise ValueError(
                f"invalid predicate: unknown name {frag!r}: no dataset has an attribute {name!r} "
                f"and no array is named so (array fields are ARRAY.{', ARRAY.'.join(FIELDS)})"
            )
        cache[name] = out
        return out

    return _Evaluator(n, resolve).eval(tree)[1]
