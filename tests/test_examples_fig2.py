"""examples/fig2_effects.py at tiny size: one assertion per effect of THEORY.md §1.7."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # ≈ 9 s of CPU (two compiled solves, 18 flows): over the default budget
def test_fig2_four_effects(tmp_path):
    mod = _load("fig2_effects")
    res = mod.main(["--out", str(tmp_path)], tiny=True)
    for name in ("width", "spectrum", "manifold", "init_scale"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0

    # width: measured first drops match their predictions (Saxe from the init; the quadratic
    # top-eigenvector blow-up); the Type III plateau shrinks with width far more than Type I's
    for kind, h, measured, predicted in res["width"]:
        assert abs(measured / predicted - 1) < (0.01 if kind == "linear" else 0.03), (kind, h)
    lin, quad = (
        mod.relative_shrink(res["width"], "linear"),
        mod.relative_shrink(res["width"], "quadratic"),
    )
    assert quad > 0.3 and quad > 3 * lin, (lin, quad)

    # spectrum: a = 0 leaves only the initial plateau (one drop); a = 1 has the staircase,
    # and its first-to-last span matches the prediction from the init
    rows = {r[0]: r for r in res["spectrum"]}
    assert rows[0.0][1] == 2 and rows[1.0][1] >= 4
    assert rows[0.0][2] < rows[1.0][2]
    np.testing.assert_allclose(rows[1.0][2], rows[1.0][3], rtol=0.03)

    # manifold: no initial plateau (the loss falls by half of the top two modes' share before
    # the isotropic run's first drop), then the two remaining modes drop when the noise says
    drops_iso, _, sol_iso = res["manifold"]["isotropic"]
    drops, pred, sol = res["manifold"]["near rank-2 manifold"]
    t, loss = np.asarray(sol.t), np.asarray(sol.loss)
    l_rank2 = 0.5 * np.sum(mod.S[2:] ** 2)
    early = loss[t <= 0.5 * drops_iso[0]]
    assert early[-1] - l_rank2 < 0.5 * (loss[0] - l_rank2), (loss[0], early[-1], l_rank2)
    np.testing.assert_allclose(drops[2:], pred[2:], rtol=0.03)
    # the later plateaus are still there: at ½(s3² + s4²), ½s4² and the final 0
    assert np.all(mod.plateau_durations(sol, mod.S)[2:] > 0.15)
    assert mod.plateau_count(sol_iso, mod.S) == 5

    # init scale: larger init, earlier first drop and shorter plateaus (the span from the first
    # to the last drop, as predicted from each init), while the rank still grows one at a time
    small, large = res["init_scale"]
    assert small[0] < large[0]
    assert large[2] < 0.5 * small[2] and large[4] < 0.8 * small[4], (small, large)
    np.testing.assert_allclose([small[2], large[2]], [small[3], large[3]], rtol=0.02)
    # V2's 3 % for later modes at small init; the independent-mode prediction misses the mode
    # interactions that grow with the init (measured 6.6 % at ε = 1e-2)
    np.testing.assert_allclose(small[4], small[5], rtol=0.03)
    np.testing.assert_allclose(large[4], large[5], rtol=0.1)
    assert small[6] == 1 and large[6] == 1
