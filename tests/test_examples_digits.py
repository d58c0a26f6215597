"""gf.data.digits (scikit-learn's digits, PCA-whitened) and examples/digits.py at tiny size."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import gradflow as gf

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_digits_preprocessing():
    data = gf.data.digits((0, 1, 7), dim=6)
    x, y = np.asarray(data.x), np.asarray(data.y)
    labels = gf.data.digit_labels((0, 1, 7))
    assert x.shape == (labels.size, 6) and y.shape == (labels.size, 3)
    np.testing.assert_allclose(x.T @ x / x.shape[0], np.eye(6), atol=1e-12)  # whitened
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-15)  # centred one-hot
    np.testing.assert_array_equal(np.argmax(y, axis=1), np.searchsorted([0, 1, 7], labels))
    # the stored teacher is Σ_yx = Yᵀ X / P without its zero mode (centring removes one)
    np.testing.assert_allclose(data.teacher.matrix(), y.T @ x / x.shape[0], atol=1e-13)
    assert data.teacher.rank == 2
    for bad, match in (((3,), "two distinct"), ((1, 1), "two distinct"), ((0, 10), "0..9")):
        with pytest.raises(ValueError, match=match):
            gf.data.digits(bad)
    with pytest.raises(ValueError, match="dim"):
        gf.data.digits(dim=0)


@pytest.mark.slow  # ≈ 4 s of CPU (one compiled solve): over the default-tier budget
def test_digits_example_rank_staircase(tmp_path):
    spec = importlib.util.spec_from_file_location("digits_example", EXAMPLES / "digits.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["digits_example"] = mod
    spec.loader.exec_module(mod)
    res = mod.main(["--out", str(tmp_path)], tiny=True)
    assert (tmp_path / "digits.png").stat().st_size > 0
    table = res["table"]
    # one rank per plateau, ending at the rank of Σ_yx; levels ½Σ_{j>k}s_j² + L_res
    np.testing.assert_array_equal(res["plateau_rank"], np.arange(res["expected"] + 1))
    assert res["final"] == res["expected"] == 3
    np.testing.assert_allclose(table.level, res["levels"], rtol=2e-3)
    # drop times: the Saxe sigmoid from the init's effective strengths (V2-like tolerance)
    np.testing.assert_allclose(table.drop[:3], res["predicted_drops"], rtol=0.01)
