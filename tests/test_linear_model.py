"""The early-time linear model of Hu et al. (`gf.analysis.early_linear_model`, THEORY §5).

Checks: the closed-form training against a matrix exponential, the isotropic coefficients
against the ReLU Hermite values, the kernel against the network's own NTK at init, and a flow:
the network follows the linear model early at a large (NTK-like) init and leaves it later.
"""

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import gradflow as gf


def sphere_data(d, p, seed=0):
    """Inputs on the sphere of radius √d (Hu et al.'s well-behaved inputs), a target with a
    linear part and a quadratic part the linear model cannot fit. (numpy RNG: no eager jax
    compilations in the setup.)"""
    x = np.random.default_rng(seed).standard_normal((p, d))
    x = np.sqrt(d) * x / np.linalg.norm(x, axis=1, keepdims=True)
    y = (x[:, 0] + x[:, 1]) / np.sqrt(2) + (x[:, 0] ** 2 - 1)
    return gf.Dataset(x, y[:, None])


def ntk_like(d, m, scale=1.0, bias=False):
    """Standard-parametrised TwoLayer with w ~ N(0, 1/d), a ~ N(0, 1/m) (times `scale`)."""
    rng = np.random.default_rng(1)
    net = gf.models.TwoLayer(d, m, 1, "relu", bias=bias, init_scale=1.0, key=jax.random.key(0))
    w = scale * rng.standard_normal((m, d)) / np.sqrt(d)
    a = scale * rng.standard_normal((1, m)) / np.sqrt(m)
    net = eqx.tree_at(lambda n: (n.w, n.a), net, (jnp.asarray(w), jnp.asarray(a)))
    if bias:
        net = eqx.tree_at(lambda n: n.b, net, jnp.asarray(scale * 0.3 * rng.standard_normal(m)))
    return net


def ntk(net, x):
    """The NTK of f = a relu(w x + b) by its definition (sum over parameters of ∂f ∂f)."""
    w, a = np.asarray(net.w), np.asarray(net.a)[0]
    b = np.zeros(len(a)) if net.b is None else np.asarray(net.b)
    g = x @ w.T + b
    act, der = np.maximum(g, 0.0), (g > 0).astype(float)
    inputs = x @ x.T + (1.0 if net.b is not None else 0.0)
    return act @ act.T + ((der * a**2) @ der.T) * inputs


def test_closed_form_coefficients_and_kernel():
    d, p, m = 20, 60, 100
    data = sphere_data(d, p)
    net = ntk_like(d, m, bias=True)
    lin = gf.analysis.early_linear_model(net, data)
    x, y = np.asarray(data.x), np.asarray(data.y)
    f0 = np.asarray(jax.vmap(net)(data.x))
    # closed form = the linear flow on the training points, r' = −K r / P
    kern = lin.kernel(x)[0]
    for t in (0.0, 0.05, 1.0, 30.0):
        r = expm(-kern * t / p) @ (f0 - y)[:, 0]
        np.testing.assert_allclose(lin.predict(t)[0, :, 0], y[:, 0] + r, rtol=0, atol=1e-10)
    # t → ∞: the residual of the affine least-squares fit of f0 − y on [x, 1]
    design = np.column_stack([x, np.ones(p)])
    resid = (f0 - y)[:, 0] - design @ np.linalg.lstsq(design, (f0 - y)[:, 0], rcond=None)[0]
    np.testing.assert_allclose(lin.predict(1e7)[0, :, 0], y[:, 0] + resid, atol=1e-8)
    # new inputs: the same affine model
    new = x[:3] * 0.5
    f0_new = np.asarray(jax.vmap(net)(jnp.asarray(new)))
    np.testing.assert_allclose(lin.predict(0.0, new)[0], f0_new, rtol=1e-14)

    # ReLU: ζ = 1/2 and ν = √(q/2π) at preactivation variance q (homogeneity)
    iso = gf.analysis.early_linear_model(net, data, isotropic=True)
    w, a, b = (np.asarray(v) for v in (net.w, net.a, net.b))
    q = np.mean(np.sum(w**2) / (m * d) * np.sum(x**2, axis=1) + np.sum(b**2) / m)
    assert iso.zeta == pytest.approx(0.5, rel=1e-12)
    assert iso.nu == pytest.approx(np.sqrt(q / (2 * np.pi)), rel=1e-12)
    np.testing.assert_allclose(iso.c1, 0.25 * (np.sum(a**2) + np.sum(w**2) / d), rtol=1e-12)
    np.testing.assert_allclose(
        iso.c0, m * q / (2 * np.pi) + 0.25 * (np.sum(b**2) + np.sum(a**2)), rtol=1e-12
    )

    # the network's own NTK at init, off the diagonal (the diagonal correction is not linear):
    # the init's Hermite linearisation is closer than the infinite-width expectation
    k_net = ntk(net, x)
    off = ~np.eye(p, dtype=bool)
    err = lambda k: np.linalg.norm((k - k_net)[off]) / np.linalg.norm(k_net[off])  # noqa: E731
    assert err(kern) < 0.2 and err(kern) < err(iso.kernel(x)[0]), (
        err(kern),
        err(iso.kernel(x)[0]),
    )


def test_network_follows_linear_model_early_at_large_init():
    """NTK-like init (O(1) outputs): the RMS gap between network and linear model is a small
    fraction of how far the network has moved early on, and grows once the network fits the
    quadratic part of the target, which the linear model cannot (its loss stalls)."""
    d, p, m = 20, 60, 100
    data = sphere_data(d, p)
    net = ntk_like(d, m)
    lin = gf.analysis.early_linear_model(net, data)
    ts = np.concatenate([[0.0], np.geomspace(0.01, 30.0, 24)])
    sol = gf.flow(
        net, data, t1=30.0, save=ts, solver="tsit5", rtol=1e-6,
        metrics={"predictions": gf.analysis.predictions},
    )  # fmt: skip
    assert sol.status == "success"
    gap = gf.analysis.linear_model_gap(sol, lin)
    rel = gap.relative
    assert gap.rms[0] == 0.0
    early = np.flatnonzero(gap.t > 0)[0]  # t = 0.01: the network has already moved
    assert gap.rms_change[early] > 0.05
    assert rel[early] < 0.2
    assert rel[-1] > 0.5 and rel[-1] > 3 * rel[early]
    lin_loss = 0.5 * np.mean((lin.predict(gap.t)[..., 0] - np.asarray(data.y)[:, 0]) ** 2, axis=1)
    assert float(sol.loss[-1]) < 0.1 * lin_loss[-1]


def test_gap_from_metrics_or_trajectory_agree():
    """`linear_model_gap` reads the network from `metrics["predictions"]` or, failing that,
    from the trajectory: both give the same numbers (a stand-in solution that stays at f0, so
    the gap is the linear model's own motion and the network's change is 0)."""
    d, p, m = 20, 60, 100
    data = sphere_data(d, p)
    net = ntk_like(d, m)
    lin = gf.analysis.early_linear_model(net, data)
    t = np.array([0.0, 0.1, 1.0])
    f0 = np.asarray(jax.vmap(net)(data.x))
    traj = jax.tree.map(lambda x: jnp.stack([x] * t.size) if eqx.is_array(x) else x, net)
    by_metric = gf.analysis.linear_model_gap(
        types.SimpleNamespace(t=t, metrics={"predictions": np.stack([f0] * t.size)}), lin
    )
    by_traj = gf.analysis.linear_model_gap(
        types.SimpleNamespace(t=t, metrics={}, trajectory=traj), lin
    )
    np.testing.assert_allclose(by_traj.rms, by_metric.rms, rtol=1e-12)
    moved = np.sqrt(np.mean((lin.predict(t)[..., 0] - f0[None, :, 0]) ** 2, axis=1))
    np.testing.assert_allclose(by_metric.rms, moved, rtol=1e-12)
    np.testing.assert_array_equal(by_metric.rms_change, 0.0)
    with pytest.raises(ValueError, match="predictions"):
        gf.analysis.linear_model_gap(types.SimpleNamespace(t=t, metrics={}), lin)
