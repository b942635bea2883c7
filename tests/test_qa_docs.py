"""The documentation tells the truth: README's names and arguments exist, docstrings match signatures.

Reads README.md's "From mitml to mitml_jax" table and checks every function, method and
argument it names in the mitml_jax column against the package; checks that every public
function's documented arguments are its parameters (and the reverse); runs the README's
statement that ``implist.analyse`` accepts a statsmodels fit, on a tiny run.
"""

import inspect
import os
import re

import pytest

import mitml_jax as mj
from mitml_jax import AnalysisList, Imputations, ImputedList
from mitml_jax.diagnostics.plotting import plot_imputations

README = os.path.join(os.path.dirname(__file__), "..", "README.md")

OWNERS = {"imp": Imputations, "Imputations": Imputations, "implist": ImputedList,
          "ImputedList": ImputedList, "": mj}
CALL = re.compile(r"^(?:(imp|implist|Imputations|ImputedList)?\.)?"
                  r"([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?$")


def _table_cells():
    """Backticked code in the mitml_jax column (and the notes) of the README's table."""
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    table = text.split("## From mitml to mitml_jax", 1)[1].split("\n\n", 2)[1]
    cells = []
    for line in table.splitlines()[2:]:
        columns = re.split(r"(?<!\\)\|", line)
        assert len(columns) == 5, line  # '', mitml, mitml_jax, notes, ''
        for code in re.findall(r"`([^`]*)`", columns[2]):
            cells.append(code.replace("\\|", "|"))
    return cells


def _callable(owner_name, name):
    owner = OWNERS[owner_name or ""]
    if owner_name is None and name in ("from_jomo", "from_mice_long", "to_mice_long", "to_long",
                                       "concat", "rbind", "cbind", "sort", "subset"):
        owner = ImputedList
    assert hasattr(owner, name), f"README names {name!r}, which {owner.__name__} lacks"
    return getattr(owner, name)


def _argument_names(arguments):
    names = []
    depth = 0
    token = ""
    for char in arguments + ",":
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            names.append(token.strip().split("=")[0].strip())
            token = ""
        else:
            token += char
    return [n for n in names if n and n != "..."]


def test_readme_table_names_exist_with_their_arguments():
    cells = _table_cells()
    assert len(cells) > 30
    checked = 0
    for code in cells:
        if code in ("+", "print(imp)") or code.startswith("type="):
            continue
        match = CALL.match(code)
        assert match, f"unparsed README cell {code!r}"
        owner_name, name, arguments = match.groups()
        function = _callable(owner_name, name)
        checked += 1
        if arguments is None or arguments == "...":
            continue
        parameters = inspect.signature(function).parameters
        if name == "plot":
            parameters = inspect.signature(plot_imputations).parameters
        variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters.values())
        for argument in _argument_names(arguments):
            if argument.startswith("random_L1"):
                argument = "random_L1"
            if argument in parameters:
                continue
            assert variadic and name == "anova" and argument.startswith("fit"), (
                f"README: {code!r} names argument {argument!r}, not a parameter of {name}")
    assert checked > 30


def test_readme_table_notes_and_extras_exist():
    """The notes column's claims about extra arguments and result methods."""
    assert {"chains", "dtype"} <= set(inspect.signature(mj.pan_impute).parameters)
    assert "random_L1" in inspect.signature(mj.jomo_impute).parameters
    frames = ImputedList([mj.load_justice().head(3)])
    assert type(frames + frames) is ImputedList and len(frames + frames) == 2  # `+` keeps the class
    for method in ("coef", "vcov", "confint", "to_frame"):
        assert hasattr(mj.analysis.estimates.EstimatesResult, method), method
    assert "level" in inspect.signature(mj.analysis.estimates.EstimatesResult.confint).parameters
    assert hasattr(mj.diagnostics.summary.ImputationSummary, "to_frame")


def _documented_arguments(doc):
    """Names in a Google-style ``Args:`` section (None when there is none)."""
    match = re.search(r"\n(\s*)Args:\s*\n(.*?)(?:\n\s*\n\s*[A-Z][A-Za-z ]+:\s*\n|\Z)", "\n" + doc, re.S)
    if not match:
        return None
    lines = [line for line in match.group(2).splitlines() if line.strip()]
    indent = min(len(line) - len(line.lstrip()) for line in lines)
    names = []
    for line in lines:
        if len(line) - len(line.lstrip()) == indent:
            head = re.match(r"\s*\**([A-Za-z_][\w, ]*?)\s*(?:\([^)]*\))?\s*:", line)
            if head:
                names += [name.strip() for name in head.group(1).split(",")]
    return names


def _public_functions():
    for name in mj.__all__:
        obj = getattr(mj, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj) and obj.__module__.startswith("mitml_jax"):
            for attr, value in vars(obj).items():
                value = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
                if not attr.startswith("_") and inspect.isfunction(value):
                    yield f"{name}.{attr}", value


@pytest.mark.parametrize("name,function", list(_public_functions()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_documented_arguments_are_the_parameters(name, function):
    documented = _documented_arguments(inspect.getdoc(function) or "")
    if documented is None:
        return
    parameters = {p for p in inspect.signature(function).parameters if p not in ("self", "cls")}
    public = {p for p in parameters if not p.startswith("_")
              and inspect.signature(function).parameters[p].kind not in
              (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    unknown = [n for n in documented if n not in parameters and n not in ("kwargs", "args")]
    assert not unknown, f"{name} documents {unknown}, which are not its parameters"
    # qhat and uhat of test_constraints are described inside the entry for 'model'
    inside_model = {"qhat", "uhat"} if name == "test_constraints" else set()
    undocumented = sorted(public - set(documented) - inside_model)
    assert not undocumented, f"{name} does not document {undocumented}"


def test_method_docstrings_state_the_signature_defaults():
    """Imputations' delegating methods document their arguments and defaults (help(imp.plot)
    used to show only **kwargs)."""
    doc = inspect.getdoc(Imputations.plot)
    for parameter, value in inspect.signature(plot_imputations).parameters.items():
        if parameter == "imp":
            continue
        assert f"``{parameter}``" in doc, parameter
    for default in ('``("beta", "beta2", "psi", "sigma")``', '``"imputation"`` (default)',
                    "``thin`` (1)", "``smooth`` (3)", "``n_rhat`` (3)", '``"mitmlPlots"``'):
        assert default in doc, default
    assert inspect.signature(plot_imputations).parameters["trace"].default == "imputation"
    assert inspect.signature(plot_imputations).parameters["smooth"].default == 3
    summary = inspect.getdoc(Imputations.summary)
    assert "default 3" in summary
    assert inspect.signature(Imputations.summary).parameters["n_rhat"].default == 3
    extend = inspect.getdoc(Imputations.extend)
    assert "m: imputations to add (default 1)" in extend
    assert inspect.signature(Imputations.extend).parameters["m"].default == 1
    # ImputedList.lmer: small batches are fitted in NumPy, not JAX (README's Performance section)
    assert "NumPy" in inspect.getdoc(ImputedList.lmer)


def test_readme_analyse_with_statsmodels():
    """README: ``implist.analyse(lambda d: smf.ols("ReadDis ~ SES + Sex", d).fit())`` pools."""
    import statsmodels.formula.api as smf

    data = mj.load_studentratings()
    imp = mj.pan_impute(data, formula="ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)",
                        n_burn=5, n_iter=2, m=2, seed=123, progress=False)
    implist = imp.complete("all")
    assert isinstance(implist, ImputedList) and len(implist) == 2
    fits = implist.analyse(lambda d: smf.ols("ReadDis ~ SES + Sex", d).fit())
    assert isinstance(fits, AnalysisList)
    assert list(mj.test_estimates(fits).to_frame().index) == ["Intercept", "Sex[T.Girl]", "SES"]


def test_diagnostics_with_too_few_draws_give_nan_as_documented():
    """rhat/ess/mcse docstrings: fewer than 2 chains (rhat) or 4 draws give NaN, not an error."""
    import numpy as np

    draws = np.random.default_rng(0).normal(size=(1, 100, 2))
    assert np.isnan(mj.rhat(draws)).all()
    short = np.random.default_rng(1).normal(size=(2, 3, 2))
    for function in (mj.rhat, mj.ess, mj.mcse):
        assert "fewer give" in inspect.getdoc(function)
        assert np.isnan(function(short)).all()


def test_cli_output_reads_back_as_its_docstring_says(tmp_path):
    """cli's docstring: from_mice_long (CSV) and read_implist (parquet) read the long output
    back with .id as the index; read_implist's docstring names that use."""
    import pandas as pd

    from mitml_jax import cli

    assert "ImputedList.from_mice_long(pd.read_csv(out))" in cli.__doc__
    assert "mitml-jax impute --out x.parquet" in inspect.getdoc(mj.read_implist)
    data = tmp_path / "d.csv"
    mj.load_studentratings()[["ID", "Sex", "ReadDis"]].to_csv(data, index=False)
    for name in ("o.csv", "o.parquet"):
        out = tmp_path / name
        assert cli.main(["impute", str(data), "--formula", "ReadDis ~ 1 + Sex + (1|ID)", "--m", "2",
                         "--n-burn", "5", "--n-iter", "2", "--quiet", "--out", str(out)]) == 0
        back = (ImputedList.from_mice_long(pd.read_csv(out)) if name.endswith(".csv")
                else mj.read_implist(out))
        assert len(back) == 2
        assert list(back[0].columns) == ["ID", "Sex", "ReadDis"]
        assert list(back[0].index[:3]) == [0, 1, 2]
