"""``test_constraints``: delta-method tests of (non)linear constraints (mitml's
``testConstraints``, spec 4.7).

Constraints are strings over parameter names, each tested against 0 (``"G.SES - I.SES"``,
``"exp(a) - 1"``, ``"a*b"``, R's ``a^2``). They are parsed with :mod:`ast` into a small, safe
evaluator over :mod:`jax.numpy` (numbers, ``+ - * / **``, R's ``^`` read as ``**``,
parameter names and a whitelist of functions, R's ``pnorm``, ``qnorm``, ``dnorm``, ``plogis`` and
``qlogis`` among them); nothing is passed to ``eval``. The Jacobian is exact (``jax.jacfwd``).
A comparison such as ``"a*b = 0.5"`` is refused with the constraint to write instead
(``"a*b - (0.5)"``); mitml fails on it with R's "could not find function "*<-"".

R's ``pi`` and ``log(x, base = b)`` are understood. Parameter names: ``(Intercept)`` is written
``Intercept`` (as in mitml; ``plogis(Intercept)`` stays a call). Names that are not
Python identifiers (``Sex[T.Girl]``, ``x:z``) can be written in backticks (```Sex[T.Girl]```),
by their R spelling when that is an identifier (``SexGirl``), or through ``names={"alias": name}``.
Dotted names such as ``G.SES``, ``x.1`` and names that are Python keywords (``class``) work as
they are.
"""

from __future__ import annotations

import ast
import keyword
import re
import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
import pandas as pd

from mitml_jax.analysis import pooling
from mitml_jax.analysis.adapters import as_fits, r_term_name
from mitml_jax.analysis.estimates import arrays_from_qhat_uhat, check_df_com, extract_estimates
from mitml_jax.analysis.models import TEST_COLUMNS, TEST_SNAKE, test_frame
from mitml_jax.analysis.printing import df_footer, format_call, format_table, table_lines
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

__all__ = ["test_constraints", "ConstraintsResult", "parse_constraints"]

FUNCTIONS = {
    "exp": jnp.exp, "log": jnp.log, "log10": jnp.log10, "log2": jnp.log2, "log1p": jnp.log1p,
    "expm1": jnp.expm1, "sqrt": jnp.sqrt, "abs": jnp.abs, "sin": jnp.sin, "cos": jnp.cos,
    "tan": jnp.tan, "tanh": jnp.tanh, "sinh": jnp.sinh, "cosh": jnp.cosh, "asin": jnp.arcsin,
    "acos": jnp.arccos, "atan": jnp.arctan, "plogis": jax.nn.sigmoid,
    "qlogis": lambda p: jnp.log(p) - jnp.log1p(-p),
    "pnorm": jax.scipy.special.ndtr, "qnorm": jax.scipy.special.ndtri,
    "dnorm": lambda x: jnp.exp(-0.5 * x * x) / jnp.sqrt(2.0 * jnp.pi),
}
_BINARY = {ast.Add: jnp.add, ast.Sub: jnp.subtract, ast.Mult: jnp.multiply,
           ast.Div: jnp.divide, ast.Pow: jnp.power}


_R_NAME = re.compile(r"(?<![\w.])[A-Za-z.][\w.]*")  # an R symbol (letters, digits, . and _)
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # also a Python (dotted) name


def _top_level(source: str) -> str:
    """``source`` without the text inside parentheses (where ``=`` names an argument)."""
    out, depth = [], 0
    for char in source:
        depth += char == "("
        if depth == 0:
            out.append(char)
        depth -= char == ")" and depth > 0
    return "".join(out)


def _clean(name: str) -> str:
    """``(Intercept)`` -> ``Intercept``, except as a function's argument list: mitml's plain
    ``gsub`` turns ``plogis(Intercept)`` into the unknown name ``plogisIntercept``."""
    return re.sub(r"(?<![\w.])\(Intercept\)", "Intercept", name)


def _lookup_table(names, aliases):
    table = {}
    for i, name in enumerate(names):
        r_name = _clean(r_term_name(name))
        for key in (name, _clean(name), r_name, re.sub(r"\s*\*\*\s*", "^", r_name)):
            table.setdefault(key, i)  # the last one: R's I(x^2) for patsy's I(x ** 2)
    if aliases is not None and not isinstance(aliases, Mapping):
        raise MitmlTypeError(f"'names' must be a dict {{alias: parameter name}}, got "
                             f"{type(aliases).__name__}.")
    for alias, target in (aliases or {}).items():
        key = _clean(str(target))
        if key not in table:
            raise MitmlError(f"'names' maps {alias!r} to {target!r}, which is not a parameter "
                             f"name; parameters are {list(names)}.")
        table[alias] = table[key]
    return table


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def parse_constraints(constraints, names, aliases=None):
    """Compile constraint strings into ``g(theta) -> (k,)`` over a parameter vector.

    Args:
        constraints: list of expressions (each tested against 0).
        names: parameter names, in the order of ``theta``.
        aliases: optional ``{alias: parameter name}``.

    Raises:
        MitmlError: unknown names, unsupported syntax or functions (the message says which).
    """
    table = _lookup_table(list(names), aliases)
    trees = []
    for text in constraints:
        quoted, originals = {}, {}

        def _placeholder(match):
            key = _clean(match.group(1))
            if key not in table:
                raise MitmlError(f"Unknown parameter `{match.group(1)}` in constraint {text!r}; "
                                 f"parameters are {list(names)}.")
            token = f"__mitml_q{len(quoted)}__"
            quoted[token] = table[key]
            originals[token] = match.group(0)
            return token

        def _r_name(match):
            # R names that are not Python (dotted) identifiers, e.g. x.1 or SES.2: parsed as
            # the parameter, as R does (without this, "x.1" reads as "x" followed by ".1")
            name = match.group(0)
            if name not in table or (_DOTTED.fullmatch(name) and not any(
                    keyword.iskeyword(part) for part in name.split("."))):
                return name  # R names that are Python keywords (class, x.in) are replaced too
            token = f"__mitml_q{len(quoted)}__"
            quoted[token] = table[name]
            originals[token] = name
            return token

        source = re.sub(r"`([^`]*)`", _placeholder, _clean(str(text)))
        source = _R_NAME.sub(_r_name, source).replace("^", "**")
        if re.search(r"[<>!]|==", source) or re.search(r"=", _top_level(source)):
            # R's named argument log(x, base = 2) is not an assignment
            lhs, op, rhs = re.split(r"(==|<=|>=|!=|=|<|>)", source, maxsplit=1)
            for token, original in originals.items():
                lhs, rhs = lhs.replace(token, original), rhs.replace(token, original)
            hint = (f"; to test {text!r}, write '{lhs.strip()} - ({rhs.strip()})'"
                    if op in ("=", "==") else "")
            raise MitmlError(f"Constraint {text!r} contains a comparison or assignment; each "
                             f"constraint is an expression tested against 0{hint}.")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as err:
            raise MitmlError(f"Could not parse constraint {text!r} ({err.msg}); put names that "
                             "are not identifiers in backticks, e.g. `Sex[T.Girl]`.") from None
        trees.append((text, tree.body, {**table, **quoted}))

    def g(theta):
        return jnp.stack([_evaluate(node, theta, lookup, text) for text, node, lookup in trees])

    return g


def _evaluate(node, theta, lookup, text):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return jnp.asarray(float(node.value))
    name = _dotted(node)
    if name == "pi" and name not in lookup:  # R's constant (a parameter named pi wins)
        return jnp.asarray(np.pi)
    if name is not None:
        if name not in lookup:
            known = sorted(k for k in lookup if not k.startswith("__mitml"))
            raise MitmlError(f"Unknown parameter {name!r} in constraint {text!r}; parameters "
                             f"and aliases are {known}.")
        return theta[lookup[name]]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, theta, lookup, text),
                                      _evaluate(node.right, theta, lookup, text))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, theta, lookup, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
            not node.keywords or (node.func.id == "log" and [k.arg for k in node.keywords] == ["base"]
                                  and len(node.args) == 1)):
        func = FUNCTIONS.get(node.func.id)
        args = [_evaluate(a, theta, lookup, text) for a in node.args + [k.value for k in
                                                                        node.keywords]]
        if func is not None and len(args) == 1:
            return func(args[0])
        if node.func.id == "log" and len(args) == 2:
            return jnp.log(args[0]) / jnp.log(args[1])
        raise MitmlError(f"Function {node.func.id!r} with {len(args)} argument(s) is not allowed "
                         f"in constraint {text!r}; allowed: {', '.join(sorted(FUNCTIONS))}.")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        named = ", ".join(str(k.arg) for k in node.keywords)
        raise MitmlError(f"Named argument(s) {named} of {node.func.id}() are not allowed in "
                         f"constraint {text!r}; give the arguments by position (only "
                         "log(x, base = b) takes a name).")
    raise MitmlError(f"Unsupported syntax in constraint {text!r}: {ast.dump(node)[:60]}...; "
                     "use numbers, parameter names (backticks for other names), + - * / ^ ** "
                     "and the functions " + ", ".join(sorted(FUNCTIONS)) + ".")


class ConstraintsResult:
    """Result of :func:`test_constraints` (mitml's ``mitml.testConstraints``).

    Attributes:
        constraints: the constraints as tested (``(Intercept)`` written ``Intercept``).
        test: one-row DataFrame ``F.value, df1, df2, P(>F), RIV``.
        Qbar: pooled constraint estimates (Series); T: their covariance ``(1 + r) Ubar*``
            with r the D1 RIV (also for D2, as in mitml).
        m, method, adj_df, df_com, call: as in mitml.
    """

    def __init__(self, constraints, test, qbar, T, m, method, df_com, call):
        self.constraints, self.test, self.Qbar, self.T = constraints, test, qbar, T
        self.m, self.method, self.df_com, self.adj_df = m, method, df_com, df_com is not None
        self.call = call

    @property
    def estimates(self) -> pd.DataFrame:
        """Constraint estimates and standard errors (``Estimate``, ``Std. Error``)."""
        return pd.DataFrame({"Estimate": self.Qbar.to_numpy(),
                             "Std. Error": np.sqrt(np.diag(self.T.to_numpy()))},
                            index=self.Qbar.index)

    def to_frame(self) -> pd.DataFrame:
        """The test with snake_case columns (f_value, df1, df2, p_value, riv)."""
        return self.test.rename(columns=dict(zip(TEST_COLUMNS, TEST_SNAKE)))

    def __str__(self) -> str:
        est = self.estimates
        out = (f"\nCall:\n\n{self.call}\n\nHypothesis test calculated from {self.m} imputed data "
               "sets. The following\nconstraints were specified:\n\n")
        out += table_lines(format_table(est.to_numpy(), [f"{c}:" for c in self.constraints],
                                        list(est.columns)), indent=True)
        out += f"\nCombination method: {self.method} \n\n"
        out += table_lines(format_table(self.test.to_numpy(), None, TEST_COLUMNS,
                                        digits=[3, 0, 3, 3, 3]), indent=True)
        if self.method == "D1":
            out += "\n" + df_footer(self.df_com) + "\n"
        return out + "\n"

    __repr__ = __str__
    summary = __str__


def test_constraints(model=None, qhat=None, uhat=None, constraints=(), method: str = "D1",
                     ariv: str = "default", df_com=None, names=None):
    """Test constraints on the parameters with the delta method (mitml's ``testConstraints``).

    Args:
        model: list of fitted models (e.g. an ``AnalysisList``), or use ``qhat`` and ``uhat``
            (formats as in :func:`~mitml_jax.analysis.estimates.test_estimates`; names from a
            DataFrame index or Series, otherwise ``Parameter.1..p``).
        constraints: one string or a list of strings, each an expression tested against 0.
        method: ``"D1"`` or ``"D2"``.
        ariv: ``"default"`` or ``"positive"`` (D2; truncates only the reported RIV, as mitml).
        df_com: complete-data df (D1 only).
        names: optional ``{alias: parameter name}`` for use in the constraints.

    Returns:
        :class:`ConstraintsResult`.
    """
    if (model is None) == (qhat is None or uhat is None):
        raise MitmlError("Either 'model' or both 'qhat' and 'uhat' must be supplied.")
    if method not in ("D1", "D2"):
        raise MitmlError(f"'method' must be 'D1' or 'D2' (got {method!r}).")
    if ariv not in ("default", "positive"):
        raise MitmlError(f"'ariv' must be 'default' or 'positive' (got {ariv!r}).")
    if df_com is not None and method == "D2":
        warnings.warn("Complete-data degrees of freedom are not available for use with 'D2', "
                      "and thus were ignored.", MitmlWarning, stacklevel=2)
        df_com = None
    if ariv == "positive" and method == "D1":
        warnings.warn("The 'positive' option is not available with method 'D1' and was ignored.",
                      MitmlWarning, stacklevel=2)
    constraints = [constraints] if isinstance(constraints, str) else constraints
    if not isinstance(constraints, (list, tuple)) or not all(isinstance(c, str) for c in constraints):
        raise MitmlTypeError(f"'constraints' must be a string or a list of strings, each an "
                             f"expression of the parameters tested against 0 (e.g. 'a - b'); got "
                             f"{constraints!r}.")
    constraints = list(constraints)
    if df_com is not None:
        df_com = float(check_df_com(df_com, [], single=True)[0])
    if not constraints:
        raise MitmlError("'constraints' is empty; give at least one expression, e.g. 'a - b'.")
    if model is not None:
        par_names, q, u = extract_estimates(as_fits(model))
    else:
        par_names, q, u, diagonal = arrays_from_qhat_uhat(qhat, uhat, require_uhat=True)
        if diagonal and q.shape[1] > 1:  # mitml refuses these too ("must be an array or a list")
            raise MitmlError(
                "'uhat' gives variances only, but the delta method needs the full covariance "
                "matrices of the parameters (their covariances change the result): pass a "
                "(p, p, m) array or a list of m (p, p) matrices (np.diag(v) if the estimates "
                "are truly uncorrelated).")
        if par_names is None:
            par_names = [f"Parameter.{i + 1}" for i in range(q.shape[1])]
    m, k = q.shape[0], len(constraints)
    if m < 2:
        raise MitmlError("Pooling needs at least two imputed data sets (got m = 1).")
    g = parse_constraints(constraints, par_names, names)
    # one compiled call is much faster than eager per-operation dispatch of vmap(jacfwd(g))
    values_and_jacobians = jax.jit(lambda th: (jax.vmap(g)(th), jax.vmap(jax.jacfwd(g))(th)))
    new_q, jac = (np.asarray(a) for a in values_and_jacobians(jnp.asarray(q)))
    _check_values(constraints, new_q, jac, q)
    new_u = jac @ u @ np.swapaxes(jac, 1, 2)
    qbar, ubar, b = pooling.pool_moments(new_q, new_u)
    _check_singular(constraints, jac, ubar)
    r = (1.0 + 1.0 / m) * np.trace(np.linalg.solve(ubar, b.T).T) / k
    if method == "D1":
        test = pooling.d1(new_q, new_u, df_com=df_com)
    else:
        d = np.array([qi @ np.linalg.solve(ui, qi) for qi, ui in zip(new_q, new_u)])
        test = pooling.d2(d, k, ariv=ariv)
    cleaned = [_clean(str(c)) for c in constraints]
    call = format_call("test_constraints", ["model"] if model is not None else ["qhat", "uhat"],
                       constraints=cleaned if len(cleaned) > 1 else cleaned[0],
                       method=None if method == "D1" else method,
                       ariv=None if ariv == "default" else ariv, df_com=df_com)
    return ConstraintsResult(cleaned, test_frame(test),
                             pd.Series(qbar, index=cleaned, name="Estimate"),
                             pd.DataFrame((1.0 + r) * ubar, index=cleaned, columns=cleaned),
                             m, method, df_com, call)


def _check_values(constraints, values, jac, q) -> None:
    """Refuse constraints whose value or derivative is not finite at some imputation's
    estimates (e.g. ``log(a)`` with ``a <= 0``), naming the constraint and the imputations."""
    good_q = np.all(np.isfinite(q), axis=1)  # non-finite estimates are reported as such
    bad = ~(np.isfinite(values) & np.all(np.isfinite(jac), axis=2)) & good_q[:, None]
    for i in np.nonzero(bad.any(axis=0))[0]:
        imps = ", ".join(str(int(j) + 1) for j in np.nonzero(bad[:, i])[0])
        raise MitmlError(f"Constraint {constraints[i]!r} or its derivative is not finite at the "
                         f"estimates of imputation(s) {imps}; rewrite it so that it is defined "
                         "there (e.g. log() of a positive quantity).")
    if not np.all(np.isfinite(q)):
        raise MitmlError("The fitted models have non-finite estimates in imputation(s) "
                         + ", ".join(str(int(j) + 1) for j in np.nonzero(~good_q)[0])
                         + "; check those fits before testing constraints.")


def _check_singular(constraints, jac, ubar) -> None:
    """Refuse constraints whose pooled covariance is singular, saying why: a constraint that
    does not depend on the parameters, or constraints that are linearly dependent."""
    flat = [i for i in range(len(constraints)) if not np.any(jac[:, i, :])]
    if flat:
        which = ", ".join(repr(constraints[i]) for i in flat)
        subject = f"Constraint {which} does" if len(flat) == 1 else f"Constraints {which} do"
        raise MitmlError(f"{subject} not depend on the parameters (zero derivative), so there is "
                         "nothing to test; each constraint must be a function of the parameters.")
    if pooling.is_singular_covariance(ubar):
        raise MitmlError(f"The constraints {constraints!r} are linearly dependent (or their "
                         "covariance is singular): a constraint repeats or combines others. "
                         "Drop the redundant constraints.")


test_constraints.__test__ = False
