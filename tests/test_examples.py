"""Examples run through their main() at tiny size."""

import importlib.util
import pathlib

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_deep_linear_staircase(tmp_path):
    mod = _load("deep_linear_staircase")
    out = tmp_path / "fig.png"
    sol, table, measured, predicted = mod.main(["--out", str(out)], width=4, init_scale=1e-4)
    assert out.stat().st_size > 0
    assert sol.status == "success"
    # first mode is the cleanest: the random-init prediction holds to < 1%
    assert abs(measured[0] - predicted[0]) / predicted[0] < 1e-2
    assert np.all(np.isfinite(table.level))


def test_flow_vs_gd(tmp_path):
    mod = _load("flow_vs_gd")
    out = tmp_path / "fvg.png"
    slope_gd, slope_mf, lam_max = mod.main(["--out", str(out)], lrs=(0.04, 0.02, 0.01), width=4)
    assert out.stat().st_size > 0
    assert abs(slope_gd - 1.0) < 0.15 and abs(slope_mf - 2.0) < 0.3
    assert abs(lam_max - 6.0) < 1e-3  # 2·s_1 at the end of the staircase
