import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf

TOL = 1e-12


def _sigma_xx(data):
    return np.asarray(data.x.T @ data.x) / data.num_examples


def _sigma_yx(data):
    return np.asarray(data.y.T @ data.x) / data.num_examples


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("sizes", [(None, None), (5, 4), (3, 7)])
def test_linear_teacher_statistics_exact(key, rotate, sizes):
    s = np.array([3.0, 2.0, 1.0])
    in_size, out_size = sizes
    data = gf.data.linear_teacher(s, in_size=in_size, out_size=out_size, key=key, rotate=rotate)
    in_size = in_size or 3
    out_size = out_size or 3
    assert data.x.shape == (in_size, in_size)
    assert data.y.shape == (in_size, out_size)
    assert data.x.dtype == jnp.float64 and data.y.dtype == jnp.float64
    np.testing.assert_allclose(_sigma_xx(data), np.eye(in_size), atol=TOL, rtol=0)
    sigma_yx = _sigma_yx(data)
    np.testing.assert_allclose(sigma_yx, np.asarray(data.teacher.matrix()), atol=TOL, rtol=0)
    sv = np.linalg.svd(sigma_yx, compute_uv=False)
    np.testing.assert_allclose(sv[:3], s, atol=TOL, rtol=0)
    np.testing.assert_allclose(sv[3:], 0.0, atol=TOL)
    t = data.teacher
    np.testing.assert_allclose(np.asarray(t.u.T @ t.u), np.eye(3), atol=TOL)
    np.testing.assert_allclose(np.asarray(t.v.T @ t.v), np.eye(3), atol=TOL)


def test_linear_teacher_v1_layout_exact(key):
    data = gf.data.linear_teacher([3.0, 2.0, 1.0], key=key, rotate=False)
    root3 = np.sqrt(3.0)
    np.testing.assert_array_equal(np.asarray(data.x), root3 * np.eye(3))
    np.testing.assert_array_equal(np.asarray(data.y), root3 * np.diag([3.0, 2.0, 1.0]))
    # Whitened data: the MSE of the zero map is ½‖S‖² = 7.
    zero = gf.models.DeepLinear(3, 3, 3, 2, 1.0, key=key)
    zero = gf.models.init.gaussian(zero, 0.0, key=key)
    assert float(gf.losses.mse(zero, data)) == pytest.approx(7.0, rel=1e-15)


def test_linear_teacher_sorts_and_keeps_the_map(key):
    data = gf.data.linear_teacher([1.0, 3.0, 2.0], key=key, rotate=False)
    t = data.teacher
    np.testing.assert_array_equal(np.asarray(t.s), [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(np.asarray(t.matrix()), np.diag([1.0, 3.0, 2.0]))
    rotated = gf.data.linear_teacher([1.0, 3.0, 2.0], key=key)
    assert np.all(np.diff(np.asarray(rotated.teacher.s)) < 0)


def test_linear_teacher_deterministic(key):
    a = gf.data.linear_teacher([2.0, 1.0], in_size=4, key=key)
    b = gf.data.linear_teacher([2.0, 1.0], in_size=4, key=key)
    c = gf.data.linear_teacher([2.0, 1.0], in_size=4, key=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
    np.testing.assert_array_equal(np.asarray(a.y), np.asarray(b.y))
    assert not np.allclose(np.asarray(a.x), np.asarray(c.x))


def test_linear_teacher_errors(key):
    with pytest.raises(ValueError, match="in_size"):
        gf.data.linear_teacher([3.0, 2.0, 1.0], in_size=2, key=key)
    with pytest.raises(ValueError, match="out_size"):
        gf.data.linear_teacher([3.0, 2.0, 1.0], out_size=2, key=key)
    with pytest.raises(ValueError, match="singular_values"):
        gf.data.linear_teacher([3.0, -1.0], key=key)
    with pytest.raises(ValueError, match="singular_values"):
        gf.data.linear_teacher([3.0, 0.0], key=key)
    with pytest.raises(ValueError, match="singular_values"):
        gf.data.linear_teacher([3.0, np.inf], key=key)
    with pytest.raises(ValueError, match="singular_values"):
        gf.data.linear_teacher([[3.0, 1.0]], key=key)


def test_linear_teacher_traced_spectrum(key):
    @jax.jit
    def statistics(exponent):
        s = jnp.arange(1.0, 4.0) ** (-exponent)
        data = gf.data.linear_teacher(s, in_size=4, key=key)
        return data.y.T @ data.x / data.num_examples, data.teacher.s

    for exponent in (0.5, 1.0):
        sigma_yx, s = statistics(exponent)
        expected = gf.data.power_law(3, exponent)
        np.testing.assert_allclose(np.asarray(s), expected, atol=TOL)
        sv = np.linalg.svd(np.asarray(sigma_yx), compute_uv=False)
        np.testing.assert_allclose(sv, expected, atol=TOL)


def test_power_law():
    s = gf.data.power_law(4, 1.0, scale=2.0)
    assert isinstance(s, np.ndarray) and s.dtype == np.float64
    np.testing.assert_allclose(s, [2.0, 1.0, 2 / 3, 0.5], rtol=1e-15)
    np.testing.assert_array_equal(gf.data.power_law(3, 0.0), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="n"):
        gf.data.power_law(0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        gf.data.power_law(3, 1.0, scale=-1.0)


def test_dataset_shapes_and_upcast():
    data = gf.Dataset(np.arange(6).reshape(3, 2), np.arange(3))
    assert data.x.dtype == jnp.float64 and data.y.dtype == jnp.float64
    assert data.x.shape == (3, 2) and data.y.shape == (3, 1)
    assert (data.num_examples, data.in_size, data.out_size) == (3, 2, 1)
    assert data.teacher is None
    one_feature = gf.Dataset(np.linspace(0, 1, 5, dtype=np.float32), np.zeros((5, 2)))
    assert one_feature.x.shape == (5, 1) and one_feature.x.dtype == jnp.float64
    assert one_feature.in_size == 1 and one_feature.out_size == 2


def test_dataset_errors():
    with pytest.raises(ValueError, match=r"`x`.*non-finite"):
        gf.Dataset(np.array([[1.0], [np.nan]]), np.zeros(2))
    with pytest.raises(ValueError, match=r"`y`.*non-finite"):
        gf.Dataset(np.zeros((2, 1)), np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match=r"`x` and `y`.*\(3, 2\).*\(4, 1\)"):
        gf.Dataset(np.zeros((3, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="`x` is empty"):
        gf.Dataset(np.zeros((0, 2)), np.zeros((0, 1)))
    with pytest.raises(ValueError, match="`x` must be 2-D"):
        gf.Dataset(np.zeros((2, 2, 2)), np.zeros(2))
    with pytest.raises(TypeError, match="`y`.*complex"):
        gf.Dataset(np.zeros((2, 1)), np.zeros(2, dtype=complex))
    with pytest.raises(TypeError, match="teacher"):
        gf.Dataset(np.zeros((2, 1)), np.zeros(2), teacher="T")


def test_dataset_is_a_pytree_through_jit_and_vmap(key):
    data = gf.data.linear_teacher([2.0, 1.0], in_size=3, key=key)
    leaves = jax.tree.leaves(data)
    assert len(leaves) == 5  # x, y, u, s, v

    @jax.jit
    def sigma_yx(d):
        return d.y.T @ d.x / d.num_examples

    @eqx.filter_jit
    def rebuild(d):
        return gf.Dataset(2.0 * d.x, d.y, teacher=d.teacher)

    np.testing.assert_allclose(sigma_yx(data), data.teacher.matrix(), atol=TOL)
    doubled = rebuild(data)
    assert isinstance(doubled, gf.Dataset) and isinstance(doubled.teacher, gf.data.LinearTeacher)
    np.testing.assert_allclose(doubled.x, 2.0 * data.x, atol=TOL)

    stacked = jax.vmap(lambda k: gf.data.linear_teacher([2.0, 1.0], key=k))(
        jax.random.split(key, 4)
    )
    assert stacked.x.shape == (4, 2, 2) and stacked.teacher.s.shape == (4, 2)
    means = jax.vmap(lambda d: jnp.mean(d.y))(stacked)
    assert means.shape == (4,)
