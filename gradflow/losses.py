"""Losses over (model, data). A loss is any function `loss(model, data) -> scalar`."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mse(model, data) -> jax.Array:
    r"""Half mean squared error, $L = \frac{1}{2P}\sum_\mu \|f(x_\mu) - y_\mu\|^2$.

    The model's `__call__` acts on one example; it is vmapped over `data.x`. With whitened
    inputs this is the normalisation under which Saxe et al.'s formulas hold with time equal
    to gradient-flow time (THEORY.md §0).
    """
    pred = jax.vmap(model)(data.x)
    return 0.5 * jnp.mean(jnp.sum(jnp.reshape(pred - data.y, (data.y.shape[0], -1)) ** 2, axis=-1))
