"""R's formula term algebra for one-sided formulas (``terms.formula``), without dependencies.

A right-hand side is tokenised into variables (names, backticked names, calls such as ``I(x**2)``
or ``log(x)`` kept as raw text), numbers and the operators ``+ - * / : ^ %in%`` with R's
precedence (``^`` > ``%in%`` > ``:`` > ``* /`` > ``+ -``) and parentheses. A term is a set of
factors; an expression is an ordered list of terms plus the intercept state:

* ``a + b`` joins, ``a - b`` removes (``- 1``/``+ 0`` drop the intercept, ``+ 1`` restores it);
* ``a:b`` and ``a %in% b`` are all pairwise unions; ``a * b = a + b + a:b``;
* ``a / b = a + (all factors of a):b``; ``(a + b)^k`` keeps interactions up to order ``k``.

Terms keep the order in which the expansion produces them (duplicates dropped), which is the
order R's ``terms`` sorts by within each degree.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

from ..errors import MitmlError

__all__ = ["expand_terms", "Expanded"]


class Expanded(NamedTuple):
    """Result of :func:`expand_terms`: intercept flag, terms (tuples of factor texts) and the
    variables in order of first appearance in the text (R's ``variables`` attribute, which orders
    the factors inside an interaction)."""

    intercept: bool
    terms: tuple
    variables: tuple


class _Expr(NamedTuple):
    terms: tuple  # tuple of tuples of factor texts (factor order: first appearance)
    intercept: bool | None  # True: "1" seen last, False: removed, None: not mentioned


_OPERATORS = ("%in%", "+", "-", "*", "/", ":", "^", "(", ")")
_NAME = re.compile(r"`[^`]*`|(?:(?:[^\W\d]|\.)[\w.]*)")  # letters of any script
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _tokenize(text: str) -> list:
    tokens, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(("op", op))
            i += len(op)
            continue
        number = _NUMBER.match(text, i)
        name = _NAME.match(text, i)
        if number and (not name or number.end() >= name.end()):
            tokens.append(("num", number.group(0)))
            i = number.end()
            continue
        if not name:
            raise MitmlError(f"Could not parse the formula part {text!r}: unexpected {ch!r}.")
        j = name.end()
        k = j
        while k < n and text[k].isspace():
            k += 1
        if k < n and text[k] == "(" and not name.group(0).startswith("`"):
            depth, k2 = 0, k
            while k2 < n:
                depth += text[k2] == "("
                depth -= text[k2] == ")"
                k2 += 1
                if depth == 0:
                    break
            if depth:
                raise MitmlError(f"Could not parse the formula part {text!r}: unbalanced parentheses.")
            tokens.append(("var", _normalize_call(text[i:k2])))
            i = k2
            continue
        token = name.group(0)
        tokens.append(("var", token[1:-1] if token.startswith("`") else token))
        i = j
    return tokens


def _normalize_call(text: str) -> str:
    """A call's text as Python prints it (``log( x )`` -> ``log(x)``), backticked names kept."""
    quoted: dict = {}

    def swap(match):
        key = f"_mitml_q{len(quoted)}_"
        quoted[key] = match.group(0)
        return key

    try:
        out = ast.unparse(ast.parse(re.sub(r"`[^`]*`", swap, text), mode="eval"))
    except SyntaxError:
        return text.strip()
    for key, value in quoted.items():
        out = out.replace(key, value)
    return out


def _union(a: tuple, b: tuple) -> tuple:
    return a + tuple(f for f in b if f not in a)


def _key(term: tuple) -> frozenset:
    return frozenset(term)


def _join(*term_lists) -> tuple:
    out, seen = [], set()
    for terms in term_lists:
        for t in terms:
            if _key(t) not in seen:
                seen.add(_key(t))
                out.append(t)
    return tuple(out)


def _interact(a: tuple, b: tuple) -> tuple:
    return _join(tuple(_union(x, y) for x in a for y in b))


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def fail(self, why: str):
        raise MitmlError(f"Could not parse the formula part {self.text!r}: {why}.")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def parse(self) -> _Expr:
        if not self.tokens:
            self.fail("it is empty")
        expr = self.sum()
        if self.pos != len(self.tokens):
            self.fail(f"unexpected {self.peek()[1]!r}")
        return expr

    def sum(self) -> _Expr:
        kind, val = self.peek()
        if kind == "op" and val in "+-":  # leading sign: "-1 + x", "+ x"
            self.take()
            right = self.product()
            expr = _Expr((), None)
            expr = self._remove(expr, right) if val == "-" else self._add(expr, right)
        else:
            expr = self.product()
        while True:
            kind, val = self.peek()
            if kind == "op" and val in ("+", "-"):
                self.take()
                right = self.product()
                expr = self._add(expr, right) if val == "+" else self._remove(expr, right)
            else:
                return expr

    @staticmethod
    def _add(left: _Expr, right: _Expr) -> _Expr:
        intercept = right.intercept if right.intercept is not None else left.intercept
        return _Expr(_join(left.terms, right.terms), intercept)

    @staticmethod
    def _remove(left: _Expr, right: _Expr) -> _Expr:
        drop = {_key(t) for t in right.terms}
        intercept = False if right.intercept else left.intercept
        if right.intercept is False:  # "- 0" adds the intercept, as in R
            intercept = True
        return _Expr(tuple(t for t in left.terms if _key(t) not in drop), intercept)

    def product(self) -> _Expr:
        expr = self.interaction()
        while True:
            kind, val = self.peek()
            if kind == "op" and val in ("*", "/"):
                self.take()
                right = self.interaction()
                self._no_numbers(expr, right, val)
                if val == "*":
                    expr = _Expr(_join(expr.terms, right.terms, _interact(expr.terms, right.terms)), None)
                else:
                    all_left = ()
                    for t in expr.terms:
                        all_left = _union(all_left, t)
                    expr = _Expr(_join(expr.terms, _interact((all_left,), right.terms)), None)
            else:
                return expr

    def _interactions(self, op: str, operand) -> _Expr:
        """``operand (op operand)*`` with ``op`` meaning all pairwise unions (``:`` and ``%in%``)."""
        expr = operand()
        while self.peek() == ("op", op):
            self.take()
            right = operand()
            self._no_numbers(expr, right, op)
            expr = _Expr(_interact(expr.terms, right.terms), None)
        return expr

    def interaction(self) -> _Expr:
        return self._interactions(":", self.nesting)

    def nesting(self) -> _Expr:
        return self._interactions("%in%", self.power)

    def power(self) -> _Expr:
        expr = self.atom()
        while self.peek() == ("op", "^"):
            self.take()
            kind, val = self.take()
            if kind != "num" or float(val) != int(float(val)) or int(float(val)) < 1:
                self.fail("'^' needs a positive whole number on its right")
            order = int(float(val))
            out = expr.terms
            for _ in range(order - 1):
                out = _join(out, _interact(out, expr.terms))
            expr = _Expr(tuple(t for t in out if len(t) <= order), None)
        return expr

    def atom(self) -> _Expr:
        kind, val = self.take()
        if kind == "var":
            return _Expr(((val,),), None)
        if kind == "num":
            if val in ("0", "1") or float(val) in (0.0, 1.0):
                return _Expr((), float(val) == 1.0)
            self.fail(f"the number {val} is not a term (only 0 and 1 are)")
        if (kind, val) == ("op", "("):
            expr = self.sum()
            if self.take() != ("op", ")"):
                self.fail("a parenthesis is not closed")
            return expr
        self.fail("unexpected end" if kind is None else f"unexpected {val!r}")

    def _no_numbers(self, left: _Expr, right: _Expr, op: str):
        if (not left.terms and left.intercept is not None) or (not right.terms and right.intercept is not None):
            self.fail(f"'{op}' cannot combine the numbers 0 or 1 with terms")


def expand_terms(rhs: str) -> Expanded:
    """Intercept flag and terms of a one-sided formula's right-hand side (no ``~``), R's rules.

    Raises:
        MitmlError: on syntax R's formula parser rejects (unbalanced parentheses, stray operators,
            numbers other than 0 and 1 as terms).
    """
    parser = _Parser(rhs)
    expr = parser.parse()
    variables = tuple(dict.fromkeys(val for kind, val in parser.tokens if kind == "var"))
    return Expanded(expr.intercept is not False, expr.terms, variables)
