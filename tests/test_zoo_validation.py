"""Architecture zoo, part 2: the exact ReLU Gaussian loss, VALIDATION V7 and V13."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf


@pytest.mark.parametrize("family", ["conv", "fc"])
def test_relu_population_loss_is_the_gaussian_mean(family):
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    if family == "conv":
        student = gf.models.Conv1D(8, 3, 4, 2, "relu", 0.7, stride=4, key=k1)
        teacher = gf.models.Conv1D(8, 2, 4, 2, "relu", 0.9, stride=4, key=k2)
        d = 8
    else:
        student = gf.models.TwoLayer(5, 4, 2, "relu", init_scale=0.7, key=k1)
        teacher = gf.models.TwoLayer(5, 3, 2, "relu", init_scale=0.9, key=k2)
        d = 5
    x = jax.random.normal(k3, (100_000, d), jnp.float64)
    zeroed = gf.models.init_extra.zero_unit(student, 0)

    @eqx.filter_jit  # one compile instead of hundreds of eager dispatches
    def measure(student, teacher, zeroed, x):
        err = jax.vmap(student)(x) - jax.vmap(teacher)(x)
        per_example = 0.5 * jnp.sum(err**2, axis=1)
        loss = gf.data.relu_population_loss
        at_teacher = jax.grad(loss)(teacher, teacher)
        at_zero = jax.grad(loss)(zeroed, teacher)
        return (
            loss(student, teacher), jnp.mean(per_example), jnp.std(per_example),
            loss(teacher, teacher), jnp.max(jnp.abs(jax.flatten_util.ravel_pytree(at_teacher)[0])),
            at_zero.kernels[0] if family == "conv" else at_zero.w[0],
        )  # fmt: skip

    exact, mean, std, self_loss, self_grad, g0 = measure(student, teacher, zeroed, x)
    sem = float(std) / np.sqrt(x.shape[0])
    assert abs(float(exact) - float(mean)) < 4 * sem, (exact, mean, sem)
    # at the teacher: zero loss and zero gradient (aligned units, c = 1, stay finite)
    assert abs(float(self_loss)) < 1e-12 and float(self_grad) < 1e-12
    # a zero unit has a zero (not nan) gradient, so it stays exactly zero (V12 b)
    assert np.all(np.asarray(g0) == 0.0)
    with pytest.raises(ValueError, match="stride"):
        gf.data.relu_population_loss(gf.models.Conv1D(8, 2, 4, 1, "relu", key=k1), teacher)
