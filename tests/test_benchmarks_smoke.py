"""Smoke test of the benchmark runner (`python -m benchmarks`): one small case, end to end.

Only the structure of the JSON is checked; speed targets are never asserted in tests.
"""

import json
import sys
from pathlib import Path

import equinox as eqx
import numpy as np

# `benchmarks/` sits beside the package at the repository root, which is not on sys.path
# when pytest is started as `pytest` (rather than `python -m pytest`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import __main__ as benchmarks_main  # noqa: E402
from benchmarks import common  # noqa: E402


def test_smallest_case_end_to_end(tmp_path, monkeypatch):
    from benchmarks import deep_linear

    monkeypatch.setattr(common, "MIN_TOTAL_S", 0.0)  # best of 3, however short the call
    monkeypatch.setattr(deep_linear, "GD_REFINE", 0)  # the GD search without its 4 bisections
    out = tmp_path / "smoke.json"
    code = benchmarks_main.main([
        "--quick", "--cases", "dl2_s1e-3", "--t1", "3.0", "--out", str(out), "--no-readme",
        "--methods", "gradflow", "scipy_lsoda", "gd",
    ])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {"meta", "cases", "targets"}
    assert result["meta"]["mode"] == "quick"
    (case,) = result["cases"]
    assert case["name"] == "dl2_s1e-3" and case["t1"] == 3.0
    assert {"reference", "rows", "lambda_max", "atol", "rtol"} <= set(case)
    assert len(case["reference"]["drops"]) == 5
    methods = {r["method"] for r in case["rows"]}
    assert {"gradflow", "scipy_lsoda", "gd_lr_1/lmax", "gd_1pct"} <= methods
    for row in case["rows"]:
        if row.get("run_s") is None:
            continue
        keys = {"method", "status", "num_steps", "num_grad_evals", "first_s", "run_s",
                "compile_s", "repeats", "drops", "drop_err", "final_loss"}  # fmt: skip
        assert keys <= set(row), row["method"]
        # >= 3 timed calls, or 1 when a first call was slow (compiles on a loaded machine)
        assert row["repeats"] >= 1 and row["run_s"] > 0
    flow = next(r for r in case["rows"] if r["method"] == "gradflow")
    assert flow["status"] == "success" and flow["num_steps"] > 0
    targets = {t["target"] for t in result["targets"]}
    assert len(targets) == 12


def test_every_case_builds_a_problem_whose_two_losses_agree():
    # No solves: each case's problem is built and its `loss(model, data)` (what gf.flow and
    # gf.gd see) equals `loss_params(params, args)` (what the hand-written competitors see).
    from benchmarks.deep_linear import CASES

    kinds = set()
    for case in CASES:
        p = common.make_problem(case.depth, case.sigma, 1.0, case.kind)
        kinds.add(case.kind)
        # (jitted: one compile per loss instead of one per operation, 114 of them in all)
        a = float(eqx.filter_jit(p.loss)(p.model, p.data))
        b = float(eqx.filter_jit(p.loss_params)(p.params, p.args))
        assert a == b and a > 0, case.name
        assert (p.levels is None) == (case.reference == "gd"), case.name
    assert kinds == {"deep_linear", "relu", "quadratic", "quadratic_wide", "attention"}
    # the quadratic nets at init ~0 sit on the V5 level L0 = ½[(tr T)² + 2‖T‖²] = 5.5 (the
    # wide one's teacher is the same, padded with zeros)
    for kind in ("quadratic", "quadratic_wide"):
        quad = common.make_problem(2, 1e-4, 1.0, kind)
        assert abs(float(quad.loss(quad.model, quad.data)) - 5.5) < 1e-6, kind
    wide = common.make_problem(2, 1e-4, 1.0, "quadratic_wide")
    assert wide.num_params == common.QUAD_WIDE_WIDTH * (common.QUAD_WIDE_DIM + 1)
    # the attention net at init ~0 sits on the first Eq. (19) level, ½ tr Λ
    attn = common.make_problem(2, 1e-4, 1.0, "attention")
    half_trace = 0.5 * sum(common.ATTN_EIGENVALUES)
    assert abs(float(attn.loss(attn.model, attn.data)) - half_trace) < 1e-6
    assert abs(attn.levels[0] - half_trace) < 1e-12


def test_reference_cache_keys_on_the_problem_and_is_used(tmp_path, monkeypatch):
    # No solves: the key changes with the problem (init scale, data) and the case; a cached
    # entry is returned without computing the reference, and restores measured levels.
    from benchmarks import deep_linear as dl
    from benchmarks import references as refs

    case = next(c for c in dl.CASES if c.name == "dl2_s1e-3")
    p = common.make_problem(case.depth, case.sigma, 1.0, case.kind)
    q = common.make_problem(case.depth, 2 * case.sigma, 1.0, case.kind)
    key = refs.key(case, p)
    assert key == refs.key(case, common.make_problem(case.depth, case.sigma, 1.0, case.kind))
    assert key != refs.key(case, q)
    other = dl.Case("other", case.depth, case.sigma, case.t1 + 1.0)
    assert key != refs.key(other, p)
    entry = dict(drops=[1.0, float("nan")], final_loss=0.5, num_steps=7, status="success",
                 seconds=2.0, levels=[3.0, 1.0], lambda_max=4.0)  # fmt: skip
    path = tmp_path / "refs.json"
    refs.store({key: entry}, path)
    loaded = refs.load(path)
    assert loaded[key]["drops"][0] == 1.0 and np.isnan(loaded[key]["drops"][1])
    assert refs.load(tmp_path / "missing.json") == {}

    def never(*a, **k):
        raise AssertionError("the cached reference was recomputed")

    monkeypatch.setattr(dl.comp, "reference", never)
    p.levels = None
    got = dl._reference(case, p, loaded, need_lambda=True)
    assert got["cached"] and got["lambda_max"] == 4.0 and got["num_steps"] == 7
    np.testing.assert_array_equal(p.levels, [3.0, 1.0])


def test_gd_search_skips_only_rates_that_cannot_pass(monkeypatch):
    # No solves: GD's drop-time error is modelled as first order in the rate (err = 0.2·c, as
    # on the 2-layer cases; λ_max = 1, so lr = c); skipping the rates the model puts above 3%
    # chooses the same rate as trying every one, with fewer runs.
    from benchmarks import deep_linear as dl

    runs = []

    def fake_gd(problem, lr, repeats=0):
        runs.append(lr)
        return {"t": None, "loss": None, "num_steps": 1}

    monkeypatch.setattr(dl.comp, "run_gd", fake_gd)
    monkeypatch.setattr(dl, "drop_times", lambda problem, t, loss: None)
    monkeypatch.setattr(dl, "drop_error", lambda drops, ref: 0.2 * runs[-1])
    results = {}
    for skip in (float("inf"), dl.GD_SKIP_ABOVE):
        monkeypatch.setattr(dl, "GD_SKIP_ABOVE", skip)
        runs.clear()
        chosen, search, _ = dl._gd_search(None, None, None, 1.0, log=lambda s: None)
        results[skip] = (chosen, len(runs), sum(bool(s.get("skipped")) for s in search))
    (full, n_full, k_full), (fast, n_fast, k_fast) = results[float("inf")], results[3.0]
    assert full == fast and 0.2 * fast <= dl.GD_TOL
    assert k_full == 0 and k_fast > 0 and n_fast < n_full
