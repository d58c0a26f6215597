"""The public-surface snippet of DESIGN.md, as written (the names are a contract)."""

import jax
import numpy as np
import optax

import gradflow as gf


def test_design_snippet_runs():
    key = jax.random.key(0)
    data = gf.data.linear_teacher([3.0, 2.0, 1.0], key=key)
    model = gf.models.DeepLinear(in_size=3, width=8, out_size=3, depth=2, init_scale=1e-6, key=key)
    sol = gf.flow(model, data, t1=40.0)
    assert sol.t.ndim == 1 and sol.loss.shape == sol.t.shape
    assert float(sol.t[0]) == 0.0
    assert sol.status == "success" and float(sol.t_final) == 40.0
    for k in ("num_steps", "num_rejected", "num_grad_evals"):
        assert int(sol.stats[k]) >= 0
    assert isinstance(sol.model, gf.models.DeepLinear)
    # the loss really went down the staircase to ~0 from ½ Σ s² = 7
    assert abs(float(sol.loss[0]) - 7.0) < 1e-6 and float(sol.loss[-1]) < 1e-8

    run = gf.gd(model, data, optax.sgd(1e-2), num_steps=4000)
    np.testing.assert_allclose(float(run.t_final), 4000 * 1e-2, rtol=1e-12)
    assert run.status == "success"

    plateaus = gf.analysis.plateaus(sol)
    levels = gf.theory.plateau_levels(np.array([3.0, 2.0, 1.0]))
    # without predictions the log-slope detector still finds the initial and final levels
    assert abs(plateaus.level[0] - levels[0]) < 1e-3 * levels[0]
    assert plateaus.level[-1] < 1e-6

    t, s, u0 = np.linspace(0, 10, 5), 3.0, 1e-6
    u = gf.theory.saxe_mode(t, s, u0)
    assert abs(u[0] - u0) < 1e-12 * u0 and abs(u[-1] - s) < 1e-9
