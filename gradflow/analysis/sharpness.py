"""Sharpness: the largest Hessian eigenvalue, by power iteration on Hessian-vector products."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..losses import mse


def hessian_top_eigenvalue(loss_fn: Callable, params, args=None, *, iters: int = 30, key=None):
    r"""Largest-magnitude eigenvalue of $\nabla^2 L$ at `params`, by power iteration.

    Uses forward-over-reverse Hessian-vector products only (never a dense Hessian), so it
    costs `iters` × (≈ 2–3 gradients). Gradient descent with learning rate $\eta$ is stable on
    a quadratic only while $\eta < 2/\lambda_{max}$: record this along a flow to see where a
    given learning rate stops following it.

    **Arguments:**

    - `loss_fn`: `loss_fn(params, args) -> scalar`.
    - `params`: any pytree of float arrays.
    - `iters`: power iterations (fixed count, so it vmaps and jits).
    - `key`: start vector seed (default: a fixed key, so results are deterministic).
    """
    flat, unravel = ravel_pytree(params)
    grad = lambda p: ravel_pytree(jax.grad(loss_fn)(unravel(p), args))[0]
    hvp = lambda v: jax.jvp(grad, (flat,), (v,))[1]
    key = jax.random.key(0) if key is None else key
    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    def body(_, carry):
        v, _lam = carry
        w = hvp(v)
        lam = jnp.vdot(v, w)
        norm = jnp.linalg.norm(w)
        return jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1.0), v), lam

    _, lam = jax.lax.fori_loop(0, iters, body, (v0, jnp.asarray(0.0, flat.dtype)))
    return lam


def sharpness(loss: Callable = mse, iters: int = 30) -> Callable:
    """A metric `fn(model, data)` recording λ_max of the loss Hessian (see
    `hessian_top_eigenvalue`). Pass it as `metrics={"sharpness": gf.analysis.sharpness()}`;
    `2 / sharpness` is the largest stable GD learning rate at each saved time.
    """
    return _Sharpness(loss, iters)


class _Sharpness(eqx.Module):
    loss: Callable = eqx.field(static=True)
    iters: int = eqx.field(static=True)

    def __call__(self, model, data):
        params, static = eqx.partition(model, eqx.is_inexact_array)
        fn = lambda p, d: self.loss(eqx.combine(p, static), d)
        return hessian_top_eigenvalue(fn, params, data, iters=self.iters)
