import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf

S = np.array([3.0, 2.0, 1.0])


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_deep_linear_shapes_and_end_to_end(key, depth):
    model = gf.models.DeepLinear(
        in_size=4, width=6, out_size=2, depth=depth, init_scale=0.3, key=key
    )
    shapes = [w.shape for w in model.weights]
    if depth == 1:
        assert shapes == [(2, 4)]
    else:
        assert shapes[0] == (6, 4) and shapes[-1] == (2, 6)
        assert all(s == (6, 6) for s in shapes[1:-1])
    assert len(model.weights) == depth == model.depth
    assert all(w.dtype == jnp.float64 for w in model.weights)
    assert model.end_to_end().shape == (2, 4)
    xs = jax.random.normal(jax.random.key(1), (5, 4), dtype=jnp.float64)
    batch = jax.vmap(model)(xs)
    assert batch.shape == (5, 2)
    np.testing.assert_allclose(batch, xs @ model.end_to_end().T, rtol=1e-13, atol=1e-15)
    units = model.units()
    if depth == 1:
        np.testing.assert_allclose(units, jnp.linalg.norm(model.weights[0], axis=0))
    else:
        expected = jnp.sqrt(
            jnp.sum(model.weights[-1] ** 2, axis=0) + jnp.sum(model.weights[-2] ** 2, axis=1)
        )
        assert units.shape == (6,)
        np.testing.assert_allclose(units, expected, rtol=1e-15)


def test_deep_linear_is_a_pytree(key):
    model = gf.models.DeepLinear(3, 4, 3, 3, 1e-6, key=key)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    assert len(jax.tree.leaves(params)) == 3
    assert eqx.combine(params, static).width == 4
    out = eqx.filter_jit(lambda m, x: m(x))(model, jnp.ones(3))
    assert out.shape == (3,)
    scales = jnp.array([1e-3, 1e-6])
    batched = jax.vmap(lambda s: gf.models.DeepLinear(3, 4, 3, 2, s, key=key))(scales)
    assert batched.weights[0].shape == (2, 4, 3)
    ratio = batched.weights[0][0] / batched.weights[0][1]
    np.testing.assert_allclose(ratio, 1e3, rtol=1e-12)


def test_deep_linear_init_std(key):
    model = gf.models.DeepLinear(
        in_size=200, width=300, out_size=5, depth=3, init_scale=0.01, key=key
    )
    assert float(jnp.std(model.weights[1])) == pytest.approx(0.01, rel=0.02)
    assert float(jnp.std(model.weights[0])) == pytest.approx(0.01, rel=0.02)
    assert abs(float(jnp.mean(model.weights[1]))) < 1e-4


def test_deep_linear_errors(key):
    with pytest.raises(ValueError, match="width"):
        gf.models.DeepLinear(3, 0, 3, 2, 1e-3, key=key)
    with pytest.raises(TypeError, match="depth"):
        gf.models.DeepLinear(3, 4, 3, 2.0, 1e-3, key=key)
    with pytest.raises(TypeError, match="in_size"):
        gf.models.DeepLinear(True, 4, 3, 2, 1e-3, key=key)
    with pytest.raises(ValueError, match="init_scale"):
        gf.models.DeepLinear(3, 4, 3, 2, 0.0, key=key)
    with pytest.raises(ValueError, match="init_scale"):
        gf.models.DeepLinear(3, 4, 3, 2, float("nan"), key=key)
    model = gf.models.DeepLinear(3, 4, 3, 2, 1e-3, key=key)
    with pytest.raises(ValueError, match="vmap"):
        model(jnp.ones((2, 3)))


def test_gaussian_and_width_scaled(key):
    model = gf.models.DeepLinear(50, 400, 50, 2, 1.0, key=key)
    new = gf.models.init.gaussian(model, 0.05, key=jax.random.key(3))
    assert new is not model and new.width == 400
    assert all(w.dtype == jnp.float64 for w in new.weights)
    std = float(jnp.std(jnp.concatenate([w.ravel() for w in new.weights])))
    assert std == pytest.approx(0.05, rel=0.02)
    scaled = gf.models.init.width_scaled(model, 1.0, key=key)
    std = float(jnp.std(jnp.concatenate([w.ravel() for w in scaled.weights])))
    assert std == pytest.approx(400**-0.5, rel=0.02)
    with pytest.raises(ValueError, match="std"):
        gf.models.init.gaussian(model, -1.0, key=key)
    with pytest.raises(TypeError, match="width"):
        gf.models.init.width_scaled({"w": jnp.ones(3)}, 1.0, key=key)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("rotate", [True, False])
def test_decoupled_end_to_end_and_loss(key, depth, rotate):
    data = gf.data.linear_teacher(S, in_size=4, out_size=5, key=key, rotate=rotate)
    model = gf.models.DeepLinear(4, 6, 5, depth, 1.0, key=key)
    a0 = np.array([1.3, 0.8, 0.4])
    hidden_key = jax.random.key(7) if rotate else None
    aligned = gf.models.init.decoupled(model, data, a0, key=hidden_key)
    t = data.teacher
    expected = (t.u * a0**depth) @ t.v.T
    np.testing.assert_allclose(aligned.end_to_end(), expected, atol=1e-14, rtol=0)
    for lower, upper in zip(aligned.weights[:-1], aligned.weights[1:]):
        np.testing.assert_allclose(upper.T @ upper, lower @ lower.T, atol=1e-14)  # balanced
    loss = float(gf.losses.mse(aligned, data))
    assert loss == pytest.approx(0.5 * np.sum((S - a0**depth) ** 2), abs=1e-12)


def test_decoupled_v1_setup(key):
    data = gf.data.linear_teacher(S, key=key, rotate=False)
    model = gf.models.DeepLinear(3, 3, 3, 2, 1.0, key=key)
    aligned = gf.models.init.decoupled(model, data.teacher, 1e-3)
    for w in aligned.weights:
        np.testing.assert_array_equal(w, 1e-3 * np.eye(3))
    assert float(gf.losses.mse(aligned, data)) == pytest.approx(6.999994, abs=1e-9)


def test_decoupled_errors(key):
    data = gf.data.linear_teacher(S, key=key)
    with pytest.raises(ValueError, match="width"):
        gf.models.init.decoupled(gf.models.DeepLinear(3, 2, 3, 2, 1.0, key=key), data, 1e-3)
    with pytest.raises(ValueError, match="in_size"):
        gf.models.init.decoupled(gf.models.DeepLinear(4, 3, 3, 2, 1.0, key=key), data, 1e-3)
    model = gf.models.DeepLinear(3, 3, 3, 2, 1.0, key=key)
    with pytest.raises(ValueError, match="a0"):
        gf.models.init.decoupled(model, data, [1.0, 2.0])
    with pytest.raises(ValueError, match="teacher"):
        gf.models.init.decoupled(model, gf.Dataset(data.x, data.y), 1e-3)
    with pytest.raises(TypeError, match="DeepLinear"):
        gf.models.init.decoupled({"w": data.x}, data, 1e-3)


@pytest.mark.parametrize("depth", [2, 3])
def test_low_rank_plus_noise(key, depth):
    data = gf.data.linear_teacher(S, in_size=4, out_size=4, key=key)
    model = gf.models.DeepLinear(4, 8, 4, depth, 1.0, key=key)
    noise = 1e-6
    init = gf.models.init.low_rank_plus_noise(
        model, data, rank=1, strength=1.2, noise=noise, key=jax.random.key(5)
    )
    t = data.teacher
    rank_one = 1.2**depth * jnp.outer(t.u[:, 0], t.v[:, 0])
    error = float(jnp.max(jnp.abs(init.end_to_end() - rank_one)))
    assert 0 < error < 100 * noise
    clean = gf.models.init.low_rank_plus_noise(
        model, data, rank=2, strength=[1.0, 0.5], noise=0.0, key=key
    )
    rank_two = (t.u[:, :2] * jnp.array([1.0, 0.5]) ** depth) @ t.v[:, :2].T
    np.testing.assert_allclose(clean.end_to_end(), rank_two, atol=1e-14)
    with pytest.raises(ValueError, match="rank"):
        gf.models.init.low_rank_plus_noise(model, data, rank=4, strength=1.0, noise=0.0, key=key)
    with pytest.raises(ValueError, match="noise"):
        gf.models.init.low_rank_plus_noise(model, data, rank=1, strength=1.0, noise=-1, key=key)
