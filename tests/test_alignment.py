"""Alignment measures of `gf.analysis`: Theorem-4 misalignment, early alignment of ReLU units.

Predictions come from `gf.theory` (Theorem 4's exponent, the Boursier–Flammarion affine fit)
or from formulas written here (the extremal direction of the 3-point data).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradflow as gf

S = np.array([3.0, 2.0, 1.0])


def v1_data():
    return gf.data.linear_teacher(S, key=jax.random.key(0), rotate=False)


def test_misalignment_of_hand_made_units():
    data = v1_data()  # q_k = r_k = e_k
    net = gf.models.DeepLinear(3, 4, 3, 2, 1.0, key=jax.random.key(0))
    w1 = np.zeros((4, 3))
    w2 = np.zeros((3, 4))
    w1[0, 0], w2[0, 0] = 2.0, 2.0  # balanced on mode 1: inside P's range
    w1[1, 0], w2[0, 1] = 1.0, -1.0  # antisymmetric on mode 1: orthogonal to it
    w1[2, 1], w2[1, 2] = 0.5, 0.5  # mode 2: outside the top-1 subspace, inside the top-2
    w1[3, 0], w2[2, 3] = 3.0, 4.0  # r_1 in, q_3 out: half of [q1; r1]·θ = 1.5 is inside
    net = eqx.tree_at(lambda m: m.weights, net, (jnp.asarray(w1), jnp.asarray(w2)))
    mis = eqx.filter_jit(gf.analysis.misalignment)  # one compile instead of many eager ops
    np.testing.assert_allclose(
        mis(net, data), [0.0, np.sqrt(2), np.sqrt(0.5), np.sqrt(25 - 4.5)],
        rtol=1e-14, atol=1e-15,
    )  # fmt: skip
    np.testing.assert_allclose(mis(net, data, rank=2)[2], 0.0, atol=1e-15)
    linear = gf.models.TwoLayer(3, 4, 3, "linear", init_scale=1.0, key=jax.random.key(0))
    linear = eqx.tree_at(lambda m: (m.w, m.a), linear, (jnp.asarray(w1), jnp.asarray(w2)))
    np.testing.assert_allclose(mis(linear, data), mis(net, data), rtol=1e-15)
    with pytest.raises(TypeError, match="linear in its units"):
        gf.analysis.misalignment(
            gf.models.DeepLinear(3, 4, 3, 3, 1.0, key=jax.random.key(0)), data
        )
    with pytest.raises(ValueError, match="`rank`"):
        gf.analysis.misalignment(net, data, rank=4)
    assert gf.theory.theorem4_exponent(S) == pytest.approx(1 / 3, rel=1e-15)
    assert gf.theory.theorem4_exponent([2.0, 2.0, 1.0], rank=2) == 0.5
    assert gf.theory.theorem4_exponent(S, rank=3) == 1.0


def test_theorem4_misalignment_exponent():
    """‖(I − P)Θ‖ at mode 1's half strength scales like ε^{1 − s2/s1} = ε^{1/3}: fitted over
    ε = 1e-6 and 1e-12 from the same normalised init (seed). Tolerance 2e-3 on the exponent:
    the next correction, mode 3's share ε^{1 − s3/s1}/ε^{1/3} = ε^{1/3} ≤ 1e-2, moves the fit
    by ≲ 1e-2/ln(1e6) ≈ 7e-4."""
    data = v1_data()
    stop = gf.analysis.half_strength_stop(data)  # one object: one compiled solve
    res = {}
    for eps in (1e-6, 1e-12):
        model = gf.models.DeepLinear(3, 8, 3, 2, eps, key=jax.random.key(1))
        sol = gf.flow(
            model, data, t1=40.0, stop_when=stop, solver="tsit5", rtol=1e-8, atol=1e-16,
            save=np.array([0.0, 1.0]),
        )  # fmt: skip
        assert sol.status == "stopped"
        res[eps] = gf.analysis.misalignment_at_half_strength(sol, data)
        np.testing.assert_allclose(res[eps].aligned, np.sqrt(S[0]), rtol=1e-6)  # balanced rank 1
    fit = np.log(res[1e-12].total / res[1e-6].total) / np.log(1e-12 / 1e-6)
    assert abs(fit - res[1e-6].theory_exponent) <= 2e-3, fit
    # the per-unit values scale the same way (same init directions, so the same prefactors)
    per = np.log(res[1e-12].per_unit / res[1e-6].per_unit) / np.log(1e-6)
    np.testing.assert_allclose(per, 1 / 3, atol=5e-3)
    # the moment itself is the random-init half-time of mode 1 (THEORY §2: "the top mode to
    # ~4 digits"; measured 4e-8 here)
    w1, w2 = (np.asarray(w) for w in model.weights)
    pred = gf.theory.random_init_half_times(S, w1, w2)[0]
    np.testing.assert_allclose(res[1e-12].time, pred, rtol=1e-4)


def three_point_directions(data):
    """The extremal direction of positive neurons: D(w) on the 'all points active' region,
    D = (1/n) Σ_k y_k (x_k, 1), which lies in that region (so it is a fixed direction)."""
    x, y = np.asarray(data.x)[:, 0], np.asarray(data.y)[:, 0]
    tilde = np.column_stack([x, np.ones(3)])
    d = y @ tilde / 3
    assert np.all(tilde @ d > 0)
    return d


def test_neuron_cosines_and_fraction_by_hand():
    net = gf.models.TwoLayer(1, 4, 1, "relu", bias=True, init_scale=1.0, key=jax.random.key(0))
    w = jnp.array([[1.0], [0.0], [-2.0], [3.0]])
    b = jnp.array([1.0, 1.0, 2.0, 0.0])
    a = jnp.array([[1.0, 1.0, -1.0, 2.0]])
    net = eqx.tree_at(lambda m: (m.w, m.b, m.a), net, (w, b, a))
    cos = gf.analysis.neuron_cosines(net, np.array([[1.0, 1.0], [0.0, 2.0]]))
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(cos, [[1, r], [r, 1], [0, r], [r, 0]], rtol=1e-14, atol=1e-15)
    frac = gf.analysis.aligned_fraction
    assert float(frac(net, [1.0, 1.0])) == 0.25
    assert float(frac(net, [1.0, 1.0], sign=1)) == pytest.approx(1 / 3)
    # weights |θ_j|²: 3, 2, 9, 13 — only the first is aligned
    assert float(frac(net, [1.0, 1.0], weighted=True)) == pytest.approx(3 / 27)
    assert float(frac(net, [[1.0, 1.0], [0.0, 1.0]], sign=1, weighted=True)) == pytest.approx(
        5 / 18
    )
    with pytest.raises(ValueError, match="entries per row"):
        gf.analysis.neuron_cosines(net, [1.0, 0.0, 0.0])


def test_early_alignment_on_three_points():
    """Boursier–Flammarion (THEORY §4): from a small balanced init, positive neurons align with
    the extremal direction D while the loss has not moved (the early phase), then the large
    neurons turn, together, to the affine least-squares fit of gf.theory (all active on the
    data, so the network is affine there)."""
    data = gf.data.boursier_three_points()
    extremal = three_point_directions(data)
    slope, intercept, fit_loss = gf.theory.boursier_spurious_fit(
        np.asarray(data.x)[:, 0], np.asarray(data.y)[:, 0]
    )
    net = gf.models.TwoLayer(1, 20, 1, "relu", bias=True, init_scale=1.0, key=jax.random.key(0))
    net = gf.models.init_extra.balanced(net, 1e-6, key=jax.random.key(1))
    metrics = {
        "frac": gf.analysis.alignment_metric(extremal, sign=1),
        "large": gf.analysis.alignment_metric(extremal, sign=1, weighted=True),
        "affine": gf.analysis.alignment_metric([slope, intercept], weighted=True),
    }
    # plain GD at lr 0.02 (≪ 2/λ_max here), as in Boursier & Flammarion: the metrics are the
    # same `fn(model, data)` as for gf.flow, and GD compiles ~3× faster than a flow (budget)
    ts = np.concatenate([[0.0], np.geomspace(0.1, 60.0, 40)])
    sol = gf.gd(net, data, optax.sgd(0.02), t1=60.0, save=ts, metrics=metrics)
    assert sol.status == "success"
    t, loss = np.asarray(sol.t), np.asarray(sol.loss)
    frac, large = np.asarray(sol.metrics["frac"]), np.asarray(sol.metrics["large"])
    early = np.flatnonzero(loss >= loss[0] * (1 - 1e-3))[-1]  # last save of the early phase
    assert frac[0] == 0.0 and large[0] < 0.05
    assert t[early] > 10.0 and large[early] > 0.999  # all the mass is aligned before the drop
    assert frac[early] >= 0.7  # the rest are neurons dead on every point (D = 0 there)
    # the fraction rises (never falls) through the early phase
    assert np.all(np.diff(frac[: early + 1]) >= 0)
    # end: at the spurious affine fit, the large neurons share its direction (slope, intercept)
    np.testing.assert_allclose(loss[-1], fit_loss, rtol=1e-4)  # measured 3e-5 at t = 60
    assert sol.metrics["affine"][-1] > 0.999


@pytest.mark.slow
def test_misalignment_from_trajectory_matches_stopped_solve():
    """The trajectory path (interpolation between saves around the half-strength moment)
    against the stopped solve (root-found moment), ε = 1e-6."""
    data = v1_data()
    model = gf.models.DeepLinear(3, 8, 3, 2, 1e-6, key=jax.random.key(1))
    stopped = gf.flow(
        model, data, t1=40.0, stop_when=gf.analysis.half_strength_stop(data), solver="tsit5",
        rtol=1e-8, atol=1e-16, save=np.array([0.0, 1.0]),
    )  # fmt: skip
    ref = gf.analysis.misalignment_at_half_strength(stopped, data)
    ts = np.unique(
        np.concatenate([np.linspace(0, 6, 61), ref.time * (1 + np.linspace(-1e-3, 1e-3, 21))])
    )
    sol = gf.flow(model, data, t1=6.0, save=ts, solver="tsit5", rtol=1e-8, atol=1e-16,
                  save_params=True)  # fmt: skip
    got = gf.analysis.misalignment_at_half_strength(sol, data)
    np.testing.assert_allclose(got.time, ref.time, rtol=1e-6)
    np.testing.assert_allclose(got.per_unit, ref.per_unit, rtol=1e-4)
    np.testing.assert_allclose(got.aligned, ref.aligned, rtol=1e-5)
