"""Architecture zoo: shapes, calls, invariant manifolds (V12), V5, V8, diagonal nets."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

import gradflow as gf

ACTIVATIONS = ["linear", "relu", "quadratic", "xtanh", "cubic", "tanh"]
PHI = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "quadratic": lambda z: z**2,
    "xtanh": lambda z: z * np.tanh(z),
    "cubic": lambda z: z**3,
    "tanh": np.tanh,
}


def _xs(n, d, seed=1):
    return np.asarray(jax.random.normal(jax.random.key(seed), (n, d), dtype=jnp.float64))


# ---- shapes and forward passes against explicit numpy formulas ------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_two_layer_forward_and_units(key, activation):
    bias = activation == "relu"
    model = gf.models.TwoLayer(3, 5, 2, activation, bias=bias, init_scale=0.7, key=key)
    assert model.w.shape == (5, 3) and model.a.shape == (2, 5)
    assert (model.b is not None) == bias and model.w.dtype == jnp.float64
    xs = _xs(4, 3)
    w, a = np.asarray(model.w), np.asarray(model.a)
    b = np.asarray(model.b) if bias else 0.0
    expected = PHI[activation](xs @ w.T + b) @ a.T
    np.testing.assert_allclose(jax.vmap(model)(xs), expected, rtol=1e-12, atol=1e-14)
    sq = (a**2).sum(0) + (w**2).sum(1) + (np.asarray(model.b) ** 2 if bias else 0.0)
    np.testing.assert_allclose(model.units(), np.sqrt(sq), rtol=1e-14)


def test_two_layer_special_maps_and_errors(key):
    lin = gf.models.TwoLayer(3, 4, 2, "linear", init_scale=0.5, key=key)
    np.testing.assert_allclose(lin.end_to_end(), lin.a @ lin.w, rtol=1e-14)
    quad_net = gf.models.TwoLayer(3, 4, 1, "quadratic", init_scale=0.5, key=key)
    x = _xs(1, 3)[0]
    m = quad_net.quadratic_form()[0]
    assert float(quad_net(x)[0]) == pytest.approx(float(x @ m @ x), rel=1e-12)
    with pytest.raises(ValueError, match="linear, relu, quadratic, xtanh, cubic, tanh"):
        gf.models.TwoLayer(3, 4, 1, "sigmoid", key=key)
    with pytest.raises(ValueError, match="init_scale"):
        gf.models.TwoLayer(3, 4, 1, "relu", init_scale=-1.0, key=key)
    with pytest.raises(TypeError, match="bias"):
        gf.models.TwoLayer(3, 4, 1, "relu", bias=1, key=key)
    with pytest.raises(ValueError, match="end_to_end"):
        quad_net.end_to_end()
    with pytest.raises(ValueError, match="quadratic_form"):
        lin.quadratic_form()
    with pytest.raises(ValueError, match="vmap"):
        lin(jnp.ones((2, 3)))


def test_diagonal_linear_init_and_call():
    model = gf.models.DiagonalLinear(4, 1e-3)
    np.testing.assert_array_equal(model.u, np.full(4, np.sqrt(2) * 1e-3))
    np.testing.assert_array_equal(model.v, np.zeros(4))
    np.testing.assert_allclose(model.alpha(), 1e-3, rtol=1e-14)
    model = eqx.tree_at(lambda m: m.v, model, jnp.array([1.0, -2.0, 0.0, 0.5]))
    x = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert model(x).shape == (1,)
    assert float(model(x)[0]) == pytest.approx(float(jnp.dot(model.u * model.v, x)), rel=1e-15)
    with pytest.raises(ValueError, match="init_scale"):
        gf.models.DiagonalLinear(4, 0.0)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_conv1d_forward(key, activation):
    model = gf.models.Conv1D(9, 3, 3, 2, activation, 0.6, stride=2, key=key)
    assert model.kernels.shape == (3, 3) and model.readout.shape == (2, 3, 4)
    xs = _xs(5, 9)
    k, r = np.asarray(model.kernels), np.asarray(model.readout)
    windows = np.stack([xs[:, 2 * p : 2 * p + 3] for p in range(4)], axis=1)  # (n, pos, k)
    expected = np.einsum("ohp,nph->no", r, PHI[activation](windows @ k.T))
    np.testing.assert_allclose(jax.vmap(model)(xs), expected, rtol=1e-12, atol=1e-14)
    if activation == "linear":  # f_o(x) = sum_p M_(o,p) . x_p
        m = np.asarray(model.kernel_map()).reshape(2, 4, 3)
        np.testing.assert_allclose(np.einsum("opk,npk->no", m, windows), expected, rtol=1e-12)
    np.testing.assert_allclose(model.units() ** 2, (k**2).sum(1) + (r**2).sum((0, 2)))


def test_attention_forward(key):
    d, n = 3, 5
    data = gf.data.in_context_regression(d, n, 7, key=key)
    assert data.x.shape == (7, (d + 1) * (n + 1)) and data.y.shape == (7, 1)
    tokens = np.asarray(data.x[0]).reshape(d + 1, n + 1)
    np.testing.assert_allclose(tokens[d, :n] @ tokens[:d, :n].T * 0, 0)
    assert tokens[d, n] == 0.0
    xs, ys, xq = tokens[:d, :n].T, tokens[d, :n], tokens[:d, n]
    beta = xs.T @ ys / n
    merged = gf.models.MergedAttention(d, 2, 0.5, key=key)
    sep = gf.models.SeparateAttention(d, 2, 2, 0.5, key=key)
    soft = gf.models.SoftmaxAttention(d, 2, 2, 0.5, key=key)
    # the full attention form: bottom-right entry of sum_i W_V Z (Z^T W_KQ Z) / N
    z = tokens
    full = 0.0
    for i in range(2):
        wkq = np.zeros((d + 1, d + 1))
        wkq[:d, :d] = np.asarray(merged.kq[i])
        wv = np.zeros((d + 1, d + 1))
        wv[d, d] = float(merged.value[i])
        full += (wv @ z @ (z.T @ wkq @ z) / n)[d, n]
    assert float(merged(data.x[0])[0]) == pytest.approx(full, rel=1e-12)
    u = np.einsum("hir,hjr->hij", sep.wk, sep.wq)
    expected = sum(float(sep.value[i]) * beta @ u[i] @ xq for i in range(2))
    assert float(sep(data.x[0])[0]) == pytest.approx(expected, rel=1e-12)
    scores = np.einsum("nd,hdr,her,e->hn", xs, soft.wk, soft.wq, xq)
    weights = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    assert float(soft(data.x[0])[0]) == pytest.approx(float(soft.value @ weights @ ys), rel=1e-12)
    with pytest.raises(ValueError, match="flattened"):
        sep(jnp.ones(7))


def test_deep_relu_forward(key):
    model = gf.models.DeepReLU(3, [4, 5], 2, 3, 0.8, bias=True, key=key)
    assert [w.shape for w in model.weights] == [(4, 3), (5, 4), (2, 5)]
    xs = _xs(6, 3)
    h = xs
    for w, b in zip(model.weights[:-1], model.biases):
        h = np.maximum(h @ np.asarray(w).T + np.asarray(b), 0)
    expected = h @ np.asarray(model.weights[-1]).T
    np.testing.assert_allclose(jax.vmap(model)(xs), expected, rtol=1e-12, atol=1e-14)
    assert model.units().shape == (5,)
    with pytest.raises(ValueError, match="depth"):
        gf.models.DeepReLU(3, 4, 2, 1, 0.1, key=key)


def test_init_extra(key):
    model = gf.models.TwoLayer(2, 300, 1, "relu", bias=True, init_scale=1.0, key=key)
    bal = gf.models.init_extra.balanced(model, 0.01, key=jax.random.key(4))
    first = jnp.sqrt(jnp.sum(bal.w**2, 1) + bal.b**2)
    np.testing.assert_allclose(jnp.abs(bal.a[0]), first, rtol=1e-14)
    frac_pos = float(jnp.mean(bal.a[0] > 0))
    assert 0.4 < frac_pos < 0.6  # random signs
    assert float(jnp.std(bal.w)) == pytest.approx(0.01, rel=0.1)
    att = gf.models.SeparateAttention(8, 9, 3, key=key)
    fro = gf.models.init_extra.frobenius(att, 5e-3, key=key)
    assert float(jnp.linalg.norm(fro.wk)) == pytest.approx(5e-3, rel=0.15)
    with pytest.raises(TypeError, match="TwoLayer"):
        gf.models.init_extra.balanced(att, 0.1, key=key)
    with pytest.raises(ValueError, match="dst"):
        gf.models.init_extra.copy_unit(model, 0, 300)


# ---- V12: invariant manifolds, all architectures in ONE flow (one compile) -----------------


def _deep_relu_copy(model, src, dst, gamma):
    w_in, b, w_out = model.weights[-2], model.biases[-1], model.weights[-1]
    new = (
        w_in.at[dst].set(gamma * w_in[src]),
        b.at[dst].set(gamma * b[src]),
        w_out.at[:, dst].set(gamma * w_out[:, src]),
    )
    return eqx.tree_at(lambda m: (m.weights[-2], m.biases[-1], m.weights[-1]), model, new)


def _zoo(key):
    """(model, data, checks): checks are (getter of unit arrays, i, j, gamma)."""
    keys = jax.random.split(key, 7)
    surgery = gf.models.init_extra
    x2 = _xs(8, 2, seed=11)
    d2 = gf.Dataset(x2, np.sin(3 * x2[:, 0]) + x2[:, 1] ** 2)
    sig = _xs(6, 7, seed=12)
    dsig = gf.Dataset(sig, np.abs(sig).sum(1) - 3)
    icl = gf.data.in_context_regression(2, 4, 16, key=keys[0])
    cases = []
    relu = gf.models.TwoLayer(2, 6, 1, "relu", bias=True, init_scale=0.6, key=keys[1])
    relu = surgery.copy_unit(relu, 0, 2)
    relu = surgery.copy_unit(relu, 1, 3, 2.5)
    cases.append((surgery.zero_unit(relu, 4), d2, [(0, 2, 1.0), (1, 3, 2.5), (4, 4, 0.0)]))
    for act in ("quadratic", "xtanh", "tanh"):
        net = gf.models.TwoLayer(2, 4, 1, act, init_scale=0.6, key=keys[2])
        net = surgery.zero_unit(surgery.copy_unit(net, 0, 1), 3)
        cases.append((net, d2, [(0, 1, 1.0), (3, 3, 0.0)]))
    conv = gf.models.Conv1D(7, 4, 3, 1, "relu", 0.6, stride=2, key=keys[3])
    conv = surgery.copy_unit(surgery.copy_unit(conv, 0, 1), 2, 3, 2.5)
    cases.append((conv, dsig, [(0, 1, 1.0), (2, 3, 2.5)]))
    conv = gf.models.Conv1D(7, 3, 3, 1, "linear", 0.6, key=keys[4])
    cases.append((surgery.zero_unit(conv, 2), dsig, [(2, 2, 0.0)]))
    for model in (
        gf.models.SeparateAttention(2, 4, 1, 0.8, key=keys[5]),
        gf.models.MergedAttention(2, 4, 0.8, key=keys[6]),
    ):
        model = surgery.zero_unit(surgery.copy_unit(model, 0, 1), 3)
        cases.append((model, icl, [(0, 1, 1.0), (3, 3, 0.0)]))
    soft = surgery.copy_unit(gf.models.SoftmaxAttention(2, 3, 1, 0.8, key=keys[5]), 0, 1)
    cases.append((soft, icl, [(0, 1, 1.0)]))
    # (ReLU nets can enter sliding modes where a preactivation sticks at a kink; an explicit
    # adaptive solver then crawls. This seed stays clear of them on [0, 1].)
    deep = gf.models.DeepReLU(2, 5, 1, 3, 0.7, bias=True, key=key)
    deep = _deep_relu_copy(_deep_relu_copy(deep, 0, 1, 1.0), 2, 3, 2.5)
    cases.append((_deep_relu_copy(deep, 4, 4, 0.0), d2, [(0, 1, 1.0), (2, 3, 2.5), (4, 4, 0.0)]))
    img = _xs(6, 16, seed=13)
    conv2d = gf.models.Conv2D(4, 4, 2, 1, "relu", 0.6, stride=2, key=keys[3])
    conv2d = surgery.zero_unit(surgery.copy_unit(conv2d, 0, 1, 2.5), 3)
    cases.append((conv2d, gf.Dataset(img, np.abs(img).sum(1) - 12), [(0, 1, 2.5), (3, 3, 0.0)]))
    return cases


def _unit_arrays(model):
    """Unit-major arrays of every field of a unit (numpy: no compile per operation)."""
    if isinstance(model, gf.models.DeepReLU):
        return [np.asarray(model.weights[-2]), np.asarray(model.biases[-1]),
                np.asarray(model.weights[-1]).T]  # fmt: skip
    axes = type(model).UNIT_AXES
    return [
        np.moveaxis(np.asarray(getattr(model, k)), ax, 0)
        for k, ax in axes.items()
        if getattr(model, k) is not None
    ]


def _unit_vector(model, i):
    return np.concatenate([np.ravel(a[i]) for a in _unit_arrays(model)])


def _check_manifolds(model, checks, tol, name):
    for i, j, gamma in checks:
        theta_i = _unit_vector(model, i)
        theta_j = _unit_vector(model, j)
        if gamma == 0.0:  # (b) a zero unit stays exactly zero
            assert float(np.max(np.abs(theta_j))) == 0.0, name
        else:  # (a) equal and (c) proportional units
            dev = np.max(np.abs(theta_j - gamma * theta_i)) / np.max(np.abs(theta_j))
            assert float(dev) <= tol, (name, i, j, float(dev))


@pytest.fixture(scope="module")
def zoo():
    # built once for the two V12 tests (~4 s of eager model surgery)
    return _zoo(jax.random.key(0))


def test_v12_vector_field_every_architecture(zoo):
    # On each manifold the field itself satisfies the constraint: -grad_j = gamma (-grad_i)
    # (gamma = 0: exactly zero), which is what makes the manifold invariant (THEORY §1.4).
    # (All gradients in one compile: 0.4 s instead of 1.9 s for one per architecture.)
    grad_all = eqx.filter_jit(lambda ms, ds: [eqx.filter_grad(gf.losses.mse)(m, d)
                                              for m, d in zip(ms, ds)])  # fmt: skip
    grads = grad_all([c[0] for c in zoo], [c[1] for c in zoo])
    for (model, _, checks), grad in zip(zoo, grads):
        assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) > 1e-3
        _check_manifolds(grad, checks, 1e-13, type(model).__name__)


def test_v12_invariant_manifolds_along_the_flow(zoo):
    # One flow over two ReLU architectures (equal, proportional and zero units) at once: the
    # flow of a sum of losses over disjoint parameters is the product of their flows, so this
    # costs one compile. The other architectures are covered at the level of the field above.
    cases = [zoo[0], next(c for c in zoo if isinstance(c[0], gf.models.Conv1D))]
    assert [c[0].activation for c in cases] == ["relu", "relu"]

    def loss(ms, ds):
        return sum(gf.losses.mse(m, d) for m, d in zip(ms, ds))

    models, datas = tuple(c[0] for c in cases), tuple(c[1] for c in cases)
    sol = gf.flow(
        models, datas, loss=loss, t1=1.0, rtol=1e-10, atol=1e-12, save=[0.0, 1.0],
        max_steps=20_000,
    )  # fmt: skip
    assert sol.status == "success"
    for (start, _, checks), end in zip(cases, sol.model):
        name = type(start).__name__
        moved = max(
            float(np.max(np.abs(a - b))) for a, b in zip(_unit_arrays(end), _unit_arrays(start))
        )
        assert moved > 1e-2, name  # the flow really moved the weights
        _check_manifolds(end, checks, 1e-12, name)


# ---- V5: quadratic net, single aligned balanced unit, population loss ----------------------

T_V5 = np.diag([2.0, -1.0])


def _v5_prediction(v0):
    """Crossing time of the loss midpoint by quadrature of v' = 2v^2(5 - 6v^3)."""
    mid = (5.5 + 4.0 / 3.0) / 2
    # L(m) = ((1 - m)^2 + 2(2 - m)^2 + 2)/2 = mid  ->  3m^2 - 10m + 11 - 2 mid = 0
    m_mid = (10 - np.sqrt(100 - 12 * (11 - 2 * mid))) / 6
    v_mid = (m_mid / 2) ** (1 / 3)
    # 1/(2v^2(5 - 6v^3)) = 1/(10 v^2) + 6v/(10 (5 - 6v^3)): singular part done analytically
    smooth, _ = quad(lambda v: 6 * v / (10 * (5 - 6 * v**3)), v0, v_mid, epsabs=1e-15)
    return mid, 1 / (10 * v0) - 1 / (10 * v_mid) + smooth


def test_v5_quadratic_single_unit_escape(key):
    v0 = 1e-2
    mid, t_cross = _v5_prediction(v0)
    assert mid == pytest.approx(3.41667, abs=1e-5) and t_cross == pytest.approx(9.86680, abs=1e-5)
    model = gf.models.TwoLayer(2, 1, 1, "quadratic", init_scale=1.0, key=key)
    aligned = (jnp.array([[np.sqrt(2) * v0, 0.0]]), jnp.array([[v0]]))
    model = eqx.tree_at(lambda m: (m.w, m.a), model, aligned)
    loss = gf.data.quadratic_population_loss
    assert float(loss(model, T_V5)) == pytest.approx(5.5 - 2 * v0**3 * 7 + 3 * 4 * v0**6 / 2)
    window = np.linspace(t_cross - 0.3, t_cross + 0.3, 1201)
    save = np.concatenate([[0.0], window, [30.0, 40.0]])
    sol = gf.flow(model, jnp.asarray(T_V5), loss=loss, t1=40.0, rtol=1e-10, save=save)
    assert sol.status == "success"
    t, loss_t = np.asarray(sol.t), np.asarray(sol.loss)
    k = int(np.flatnonzero(loss_t < mid)[0])
    assert window[0] < t[k] <= window[-1]
    t_meas = t[k - 1] + (mid - loss_t[k - 1]) * (t[k] - t[k - 1]) / (loss_t[k] - loss_t[k - 1])
    assert abs(t_meas - t_cross) / t_cross < 1e-4
    # the width-1 global minimum M = (5/3) e1 e1^T: the loss stays at 4/3
    np.testing.assert_allclose(loss_t[-2:], 4.0 / 3.0, rtol=1e-4)
    m = sol.model.quadratic_form()[0]
    np.testing.assert_allclose(m, np.diag([5.0 / 3.0, 0.0]), atol=1e-4)


# ---- V8: merged-KQ attention, analytic sigmoid ---------------------------------------------


def test_v8_merged_attention_sigmoid(key):
    d, n, w0 = 4, 31, 1e-3
    task = gf.data.InContextTask(np.ones(d), n)
    c = 1 + (1 + d) / n
    model = gf.models.MergedAttention(d, 3, 1.0, key=key)
    value = jnp.array([w0, 0.0, 0.0])
    kq = jnp.zeros((3, d, d)).at[0].set(w0 * jnp.eye(d) / 2)  # W1 = w0 h d^T, d = vec(I)/2
    model = eqx.tree_at(lambda m: (m.value, m.kq), model, (value, kq))
    times = np.array([0.0, 2.0, 3.0, 3.5, 4.0, 5.0])
    sol = gf.flow(
        model,
        task,
        loss=gf.data.in_context_population_loss,
        t1=5.0,
        rtol=1e-11,
        atol=1e-15,
        save=times,
    )
    e = np.exp(4 * times)
    sigma = e / (c * (e - 1) + 2 / w0**2)
    predicted = d - 2 * d * sigma + c * d * sigma**2  # the ICL loss, no 1/2
    np.testing.assert_allclose(
        predicted[1:], [3.988107, 3.430870, 1.749811, 0.646338, 0.555599], rtol=2e-6
    )
    np.testing.assert_allclose(2 * np.asarray(sol.loss), predicted, rtol=1e-6)


# ---- Diagonal linear network: the mirror identity beta = alpha^2 sinh(2 s) ------------------


def test_diagonal_mirror_identity_and_support():
    alpha, n = 1e-3, 3
    beta_star = np.array([1.0, -0.5, 0.0])
    x = np.sqrt(n) * np.eye(n)
    data = gf.Dataset(x, x @ beta_star)  # L = 1/2 ||beta - beta*||^2 exactly
    model = gf.models.DiagonalLinear(n, alpha)
    sol = gf.flow(
        model, data, t1=40.0, rtol=1e-10, atol=1e-14, save=80, save_params=True,
        metrics={"support": gf.analysis.complexity_metric()},
    )  # fmt: skip
    assert sol.status == "success"
    u, v = np.asarray(sol.trajectory.u), np.asarray(sol.trajectory.v)
    np.testing.assert_allclose(u**2 - v**2, 2 * alpha**2, rtol=0, atol=1e-10)  # conserved
    np.testing.assert_array_equal(v[:, 2], 0.0)  # beta*_3 = 0: that coordinate never moves
    # coordinates decouple: s' = b* - alpha^2 sinh(2 s), so the time to reach beta is
    # t(beta) = int_0^{asinh(beta/alpha^2)/2} ds / (b* - alpha^2 sinh 2s)
    beta = u * v
    checked = 0
    for i in (0, 1):
        b = beta_star[i]
        for t, bt in zip(np.asarray(sol.t), beta[:, i]):
            if not 1e-3 < bt / b < 0.99:
                continue
            s_end = np.arcsinh(bt / alpha**2) / 2
            t_pred, _ = quad(lambda s: 1 / (b - alpha**2 * np.sinh(2 * s)), 0, s_end, epsrel=1e-12)
            assert abs(t - t_pred) / t_pred < 1e-6
            checked += 1
    assert checked > 10
    counts = np.asarray(sol.metrics["support"])
    assert counts[0] == 0 and counts[-1] == 2 and np.all(np.diff(counts) >= 0)
    assert set(counts.tolist()) == {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(gf.analysis.support(sol.model), [1, -1, 0])
