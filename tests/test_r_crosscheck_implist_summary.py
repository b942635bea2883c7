"""imp.summary() against R's summary.mitml on the same parameter draws (mitml 0.4-4).

tests/reference/crosscheck_implist/make_summary.R runs panImpute / jomoImpute briefly and stores
their imputation-phase draws, summary(...)$conv and the printed summary. Here the same draws go
into an Imputations object; the statistics must agree to 1e-10 and the printed text (from the
model block to the autocorrelation table) must be identical. The call differs by construction,
and mitml lists the missing-data rates in its reordered column order (cluster, group, targets,
rest) while we keep the data's column order, so those are compared by name.
"""

import json
import os

import numpy as np
import pytest

from mitml_jax import build_spec, load_leadership, load_studentratings
from mitml_jax.results.imputations import Imputations

HERE = os.path.join(os.path.dirname(__file__), "reference", "crosscheck_implist")
STATS = {"Rhat": "rhat_segments", "SDprop": "sd_prop", "lag-1": "acf_lag1", "lag-k": "acf_lagk",
         "lag-2k": "acf_lag2k"}
CASES = {  # fixture -> (summary keys with their arguments)
    "pan": {"rhat3": (3, False, False), "rhat4_all": (4, True, True), "rhat7_all": (7, True, True),
            "acf_only": (None, False, True), "sdprop_only": (1, True, False)},
    "pan_groups": {"rhat3": (3, False, False), "rhat4_all": (4, True, True),
                   "rhat7_all": (7, True, True), "acf_only": (None, False, True),
                   "sdprop_only": (1, True, False)},
    "pan_constant": {"rhat3": (3, False, False), "rhat4_all": (4, True, True),
                     "rhat7_all": (7, True, True), "acf_only": (None, False, True),
                     "sdprop_only": (1, True, False)},
    "jomo_l2": {"rhat3_all": (3, True, True)},
    "jomo_l2_diagonal": {"rhat3_all": (3, True, True)},
}


def _load(name):
    with open(os.path.join(HERE, f"summary_{name}.json")) as handle:
        return json.load(handle)


def _imputations(name, ref):
    """An Imputations holding R's draws, (rows, cols, iter, group) -> (1, iter, group, rows, cols)."""
    if name.startswith("pan"):
        data = load_studentratings()
        spec = build_spec(data, "ReadDis + SES ~ 1 + Sex + (1|ID)",
                          group="FedState" if name == "pan_groups" else None)
        n_burn = 50
        kind, random_l1 = "pan", "none"
    else:
        data = load_leadership()
        data = data[data.GRPID <= 10].reset_index(drop=True)
        spec = build_spec(data, ["JOBSAT + NEGLEAD ~ 1 + (1|GRPID)", "COHES ~ 1"], kind="jomo")
        kind, n_burn, random_l1 = "jomo", 20, "full"
    draws = {}
    for block, entry in ref["draws"].items():
        values = np.asarray(entry["values"], dtype=float).reshape(entry["dim"], order="F")
        draws[block] = np.transpose(values, (2, 3, 0, 1))[None].copy()
    groups, m = draws["beta"].shape[2], ref["m"]
    return Imputations(
        data=data, spec=spec, kind=kind, call="(call)", n_burn=n_burn, n_iter=ref["n_iter"], m=m,
        chains=1, seed=1, prior=[{}] * groups,
        keep_chains="diagonal" if name.endswith("diagonal") else "full", random_L1=random_l1,
        replacement=np.zeros((0, m)), index=np.zeros((0, 2), int),
        burnin={k: v[:, :0] for k, v in draws.items()}, imputation=draws, labels={},
        imputation_source=np.column_stack([np.zeros(m, int), np.arange(m)]),
    )


def _cases():
    return [(name, key) for name, keys in CASES.items() for key in keys]


@pytest.mark.parametrize("name,key", _cases())
def test_statistics_equal_r(name, key):
    ref = _load(name)
    frame = _imputations(name, ref).summary(*CASES[name][key]).to_frame()
    conv = ref[key]["conv"]
    assert list(conv) == list(dict.fromkeys(frame["block"]))
    for block, entry in conv.items():
        values = np.asarray(entry["values"], dtype=float).reshape(-1, len(entry["colnames"]))
        ours = frame[frame["block"] == block]
        # same entries in the same order (i1, i2, group), redundant ones skipped alike
        np.testing.assert_array_equal(ours[["row", "col", "group"]].to_numpy(), values[:, :3])
        for j, column in enumerate(entry["colnames"][3:], start=3):
            np.testing.assert_allclose(ours[STATS[column]].to_numpy(), values[:, j], rtol=0,
                                       atol=1e-10, err_msg=f"{name} {key} {block} {column}")


@pytest.mark.parametrize("name,key", _cases())
def test_printed_summary_equals_r(name, key):
    ref = _load(name)
    text = str(_imputations(name, ref).summary(*CASES[name][key]))
    r_text = ref[key]["text"]
    start = "Level 1:" if name.startswith("jomo") else "Cluster variable:"
    cut = "\nMissing data per variable:\n"
    ours, theirs = text[text.index(start):], r_text[r_text.index(start):]
    assert ours.split(cut)[0] == theirs.split(cut)[0]

    def rates(block):  # "    a  b\nMD% 1  2" (possibly wrapped) -> {name: rate}
        lines = block.split(cut)[1].split("\nAcross chains")[0].strip("\n").split("\n")
        out = {}
        for head, row in zip(lines[::2], lines[1::2]):
            out.update(zip(head.split(), row.split()[1:]))
        return out

    assert rates(ours) == rates(theirs)
    assert set(rates(theirs)) == set(ref["data_columns"])


@pytest.mark.parametrize("name", list(CASES))
def test_print_equals_r(name):
    """print(imp): the model block, iteration sentence and groups line as mitml prints them."""
    ref = _load(name)
    text = repr(_imputations(name, ref))
    start = "Level 1:" if name.startswith("jomo") else "Cluster variable:"
    # capture.output drops the last newline
    assert text[text.index(start):] == ref["print"][ref["print"].index(start):] + "\n"
