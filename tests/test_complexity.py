"""gf.analysis.complexity: counts on hand-built models, and staircases along the flow."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf

complexity = gf.analysis.complexity


def _set(model, **fields):
    names = list(fields)
    values = [jnp.asarray(v, dtype=jnp.float64) for v in fields.values()]
    return eqx.tree_at(lambda m: [getattr(m, k) for k in names], model, values)


def test_rank_of_linear_families(key):
    net = gf.models.TwoLayer(3, 3, 3, "linear", init_scale=1.0, key=key)
    net = _set(net, w=np.diag([3.0, 0.2, 1e-9]), a=np.eye(3))
    assert int(complexity(net)) == 1  # singular values 3, 0.2, 1e-9: 0.2 < 0.1 * 3
    assert int(complexity(net, rel=0.05)) == 2
    assert int(complexity(net, rel=0.0, abs_=1e-10)) == 3
    assert int(complexity(net, rel=0.0, abs_=0.5)) == 1
    deep = gf.models.DeepLinear(3, 4, 3, 2, 1.0, key=key)
    w1 = np.zeros((4, 3))
    w1[0, 0], w1[1, 1] = 2.0, 1.0
    deep = eqx.tree_at(lambda m: m.weights, deep, (jnp.asarray(w1), jnp.asarray(w1.T)))
    assert int(complexity(deep)) == 2
    conv = gf.models.Conv1D(6, 3, 2, 1, "linear", 1.0, stride=2, key=key)
    kernels = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1e-8]])  # two parallel kernels
    conv = _set(conv, kernels=kernels, readout=np.ones((1, 3, 3)))
    assert int(complexity(conv, rel=0.0, abs_=1e-6)) == 1


def test_kinks_of_1d_relu_with_bias(key):
    net = gf.models.TwoLayer(1, 7, 1, "relu", bias=True, init_scale=1.0, key=key)
    w = np.array([1.0, 2.0, -1.0, 1.0, 0.0, 1.0, 1e-9])
    b = np.array([-0.5, -1.0, 0.5, 0.2, 0.3, 5.0, 0.0])
    a = np.array([[1.0, -1.0, 0.5, 1.0, 1.0, 1.0, 1e-9]])
    net = _set(net, w=w[:, None], b=b, a=a)
    # kinks at 0.5 (three units), -0.2, -5; w = 0 has none; the last unit is not grown
    assert int(complexity(net, abs_=1e-3)) == 3
    data = gf.Dataset(np.linspace(-1.0, 1.0, 5), np.zeros(5))
    assert int(complexity(net, data, abs_=1e-3)) == 2  # -5 lies outside the data
    assert int(complexity(net, data, abs_=1e-3, kink_tol=1.0)) == 1
    three = gf.data.boursier_three_points()
    np.testing.assert_array_equal(three.x[:, 0], [-0.75, -0.5, 0.125])


def test_rays_and_active_units(key):
    net = gf.models.TwoLayer(2, 6, 1, "relu", init_scale=1.0, key=key)
    w = np.array([[1.0, 0.0], [2.0, 1e-4], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [1e-9, 0.0]])
    net = _set(net, w=w, a=np.array([[1.0, 2.0, -1.0, 1.0, 1.0, 1e-9]]))
    # rays: e1 (units 0, 1), e2, (1, 1)/sqrt2, -e1; unit 5 is not grown
    assert int(complexity(net, abs_=1e-3)) == 4
    assert int(complexity(net, abs_=1e-3, cos=0.5)) == 3  # e1 and (1, 1) merge
    quad = gf.models.TwoLayer(2, 4, 1, "quadratic", init_scale=1e-3, key=key)
    grown = _set(
        quad, w=np.array([[1.0, 0], [0, 0.5], [1e-4, 0], [0, 0]]), a=[[1.0, 0.5, 1e-4, 0.0]]
    )
    assert int(complexity(grown, reference=quad)) == 2
    metric = gf.analysis.complexity_metric(reference=quad)
    assert int(metric(grown, None)) == 2 and int(metric(quad, None)) == 0
    tanh = _set(
        gf.models.TwoLayer(2, 3, 1, "tanh", init_scale=1.0, key=key),
        w=np.array([[3.0, 0.0], [0.0, 0.5], [0.0, 0.0]]),
    )
    assert float(complexity(tanh)) == pytest.approx(6.0, rel=1e-12)


def test_diagonal_support_and_signs():
    model = gf.models.DiagonalLinear(5, 1e-4)
    beta = np.array([0.8, -0.3, 1e-6, 0.0, -1e-9])
    # keep u^2 - v^2 = 2 alpha^2: u = sqrt(2 alpha^2 + v^2), u v = beta
    v2 = (-2e-8 + np.sqrt(4e-16 + 4 * beta**2)) / 2
    v = np.sign(beta) * np.sqrt(v2)
    model = _set(model, u=np.sqrt(2e-8 + v2), v=v)
    np.testing.assert_allclose(model.beta(), beta, rtol=1e-10, atol=1e-20)
    np.testing.assert_allclose(model.alpha(), 1e-4, rtol=1e-8)
    assert int(complexity(model)) == 2  # threshold 10 alpha = 1e-3
    np.testing.assert_array_equal(gf.analysis.support(model), [1, -1, 0, 0, 0])


def test_attention_and_deep_relu_measures(key):
    merged = gf.models.MergedAttention(3, 2, 1.0, key=key)
    merged = _set(
        merged, value=[1.0, 1.0], kq=np.stack([np.diag([1.0, 0, 0]), np.diag([0, 2.0, 0])])
    )
    assert int(complexity(merged)) == 2
    sep = gf.models.SeparateAttention(3, 3, 1, 1e-3, key=key)
    e = np.eye(3)[:, :, None]
    grown = _set(sep, value=[1.0, 0.0, 0.5], wk=[e[1], 0 * e[0], e[0]], wq=[e[1], 0 * e[0], e[0]])
    assert int(complexity(grown, reference=sep)) == 2
    np.testing.assert_allclose(
        gf.analysis.head_directions(grown), [[0, 1, 0], [0, 0, 0], [0.5, 0, 0]], atol=1e-15
    )
    deep = gf.models.DeepReLU(3, 4, 2, 3, 1.0, key=key)
    counts = complexity(deep, rel=0.0, abs_=1e-12)
    np.testing.assert_array_equal(counts, [3, 4, 2])
    with pytest.raises(TypeError, match="No complexity measure"):
        complexity({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match="rel"):
        complexity(deep, rel=1.0)


def test_complexity_is_jittable(key):
    net = gf.models.TwoLayer(1, 5, 1, "relu", bias=True, init_scale=1.0, key=key)
    data = gf.data.stewart(key=key)
    jitted = eqx.filter_jit(lambda m, d, t: complexity(m, d, abs_=t))
    assert int(jitted(net, data, 1e-3)) == int(complexity(net, data, abs_=1e-3))


# ---- staircases along the flow: one unit per plateau ---------------------------------------


def test_quadratic_staircase_counts_units():
    # V5-type teacher T = diag(2, -1), width 4, small random init: units are recruited one at a
    # time (Type III): plateau levels 5.5 -> 4/3 -> 0 with 0 -> 1 -> 2 active units.
    t = jnp.diag(jnp.array([2.0, -1.0]))
    model = gf.models.TwoLayer(2, 4, 1, "quadratic", init_scale=1e-2, key=jax.random.key(0))
    sol = gf.flow(
        model, t, loss=gf.data.quadratic_population_loss, t1=120.0, rtol=1e-8, save=120,
        metrics={"units": gf.analysis.complexity_metric(reference=model)},
    )  # fmt: skip
    assert sol.status == "success"
    loss, count = np.asarray(sol.loss), np.asarray(sol.metrics["units"])
    assert np.all(np.diff(count) >= 0) and count[0] == 0 and count[-1] == 2
    for level, expected in ((5.5, 0), (4.0 / 3.0, 1), (0.0, 2)):
        on = np.abs(loss - level) < 1e-3 * max(level, 1.0)
        assert on.sum() >= 3, level  # the plateau is visited for several saves
        assert np.all(count[on] == expected), (level, count[on])


def test_separate_attention_staircase_v9():
    # VALIDATION V9: population ODE, D = 4, N = 31, H = 4 rank-1 heads, eps = 1e-2. Heads are
    # recruited one per plateau and learn e_1, ..., e_4 in order; levels follow Eq. (19).
    lam, n = np.array([0.4, 0.3, 0.2, 0.1]), 31
    tr = lam.sum()
    levels = [tr - sum(x / (1 + (1 + tr / x) / n) for x in lam[:m]) for m in range(5)]
    np.testing.assert_allclose(levels, [1.0, 0.64058, 0.37737, 0.20980, 0.13600], atol=1e-5)
    model = gf.models.SeparateAttention(4, 4, 1, 1e-2, key=jax.random.key(0))
    sol = gf.flow(
        model, gf.data.InContextTask(lam, n), loss=gf.data.in_context_population_loss,
        t1=40_000.0, rtol=1e-8, save=80,
        metrics={
            "heads": gf.analysis.complexity_metric(reference=model),
            "learned": lambda m, d: jnp.diagonal(m.merged()) * lam,
        },
    )  # fmt: skip
    assert sol.status == "success"
    icl_loss, heads = 2 * np.asarray(sol.loss), np.asarray(sol.metrics["heads"])
    learned = np.asarray(sol.metrics["learned"])
    for m, level in enumerate(levels):
        on = np.abs(icl_loss - level) < 1e-3 * level
        assert on.sum() >= 2, (m, level)
        assert np.all(heads[on] == m), (m, heads[on])
        # on plateau m exactly the top-m eigenvectors are learned (A_dd lam_d -> 1/(1 + ...))
        done = learned[on][-1] > 0.5
        np.testing.assert_array_equal(done, np.arange(4) < m)
