"""examples/architectures.py at tiny size: one complexity unit per plateau, or a single drop."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(mod)
    return mod


def _check(name, res, out):
    assert (out / f"{name}.png").stat().st_size > 0
    if getattr(res.sol.model, "in_size", None) == 2:  # 2-D inputs: unit pictures as well
        assert (out / f"{name}_units.png").stat().st_size > 0
    assert res.sol.status == "success"
    if name == "tanh":  # the negative control: one drop, then a slow smooth decrease
        assert res.num_plateaus == 2 and res.single_drop
        return
    if name == "attention_merged":  # the other counter-example: rank 0 -> full rank at once
        assert res.num_plateaus == 2 and res.single_drop
        np.testing.assert_array_equal(res.plateau_complexity, [0, res.expected])
        assert res.final == res.expected
        return
    # Type I/II/III staircase: plateau k carries complexity k, the last one the teacher's count
    np.testing.assert_array_equal(res.plateau_complexity, np.arange(res.expected + 1))
    assert res.num_plateaus == res.expected + 1 and res.final == res.expected
    assert res.staircase
    c = np.asarray(res.sol.metrics["complexity"])
    assert np.all(np.diff(c[np.asarray(res.sol.t) > res.table.end[0]]) >= -1)  # no collapse


def test_zoo_quadratic_staircase_and_merged_attention_single_drop(tmp_path):
    mod = _load("architectures")
    results = mod.main(
        ["--out", str(tmp_path)], which=("quadratic", "attention_merged"), tiny=True
    )
    assert set(results) == {"quadratic", "attention_merged"}
    for name, res in results.items():
        _check(name, res, tmp_path)
    assert results["quadratic"].expected == 2 and results["attention_merged"].expected == 3


@pytest.mark.slow
def test_zoo_all_architectures(tmp_path):
    mod = _load("architectures")
    results = mod.main(["--out", str(tmp_path)])
    assert tuple(results) == mod.ALL
    for name, res in results.items():
        _check(name, res, tmp_path)


def test_zoo_relu_kinks_and_relu_conv_staircases(tmp_path):
    # Type II: 1-D ReLU with bias gains one kink per plateau (0 -> 1 -> 2, at the teacher's
    # kinks 0 and -1/4), the ReLU conv net one kernel ray per plateau (0 -> 1 -> 2)
    mod = _load("architectures")
    results = mod.main(["--out", str(tmp_path)], which=("relu_kinks", "relu_conv"), tiny=True)
    for name, res in results.items():
        _check(name, res, tmp_path)
        assert res.expected == 2 and res.num_plateaus == 3
    m = results["relu_kinks"].sol.model
    grown = np.asarray(m.units()) > mod.TAU
    kinks = np.unique(np.round(-np.asarray(m.b)[grown] / np.asarray(m.w[:, 0])[grown], 3))
    np.testing.assert_allclose(np.sort(kinks), np.sort(mod.RELU_KINKS), atol=2e-3)
