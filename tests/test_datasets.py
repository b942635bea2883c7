import subprocess
import sys

import pandas as pd

from mitml_jax import datasets


def test_studentratings_shape_and_types():
    data = datasets.load_studentratings()
    assert data.shape == (750, 10)
    assert data["ID"].dtype == "int64"
    assert list(data["FedState"].cat.categories) == ["B", "SH"]
    assert list(data["Sex"].cat.categories) == ["Boy", "Girl"]
    assert data["MathDis"].isna().sum() == 466
    assert data["ReadDis"].isna().sum() == 153
    assert data["ID"].nunique() == 50


def test_leadership_and_justice():
    lead = datasets.load_leadership()
    assert lead.shape == (750, 5)
    assert list(lead["WLOAD"].cat.categories) == ["low", "high"]
    assert lead["WLOAD"].isna().sum() == 86
    just = datasets.load_justice()
    assert just.shape == (1400, 5)
    assert just["id"].dtype == "int64"
    assert list(just["sex"].cat.categories) == ["male", "female"]
    assert just["jcl"].isna().sum() == 63


def test_fresh_copy_each_call():
    a = datasets.load_studentratings()
    a.loc[0, "SES"] = -1.0
    assert datasets.load_studentratings().loc[0, "SES"] != -1.0


def test_import_is_light():
    code = (
        "import sys, mitml_jax; "
        "heavy = [m for m in ('statsmodels', 'matplotlib', 'arviz') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
