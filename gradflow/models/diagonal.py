r"""Diagonal linear network $f(x) = (u \odot v)^\top x$ (Pesme & Flammarion, THEORY.md §8)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import positive_int as _positive_int
from ._checks import check_init_scale


class DiagonalLinear(eqx.Module):
    r"""Two-layer diagonal linear network, $\beta = u \odot v$, scalar output $\beta^\top x$.

    Started at $u(0) = \sqrt2\,\alpha\,\mathbf 1$, $v(0) = 0$, the flow keeps
    $u_i^2 - v_i^2 \equiv 2\alpha^2$ and satisfies exactly (THEORY.md §8)

    $$\beta(t) = \alpha^2 \sinh(2 s(t)),\qquad s(t) = -\int_0^t \nabla L(\beta(r))\,dr,$$

    i.e. $u = \sqrt2\alpha\cosh s$, $v = \sqrt2\alpha\sinh s$. As $\alpha \to 0$ coordinates
    activate one at a time (saddle to saddle) towards the minimum-$\ell_1$ interpolator, so the
    support of $\beta$ is the complexity measure.

    **Fields:**

    - `u`, `v`: shape `(in_size,)`.
    - `in_size`: static.
    """

    u: jax.Array
    v: jax.Array
    in_size: int = eqx.field(static=True)

    def __init__(self, in_size: int, init_scale):
        r"""**Arguments:**

        - `in_size`: number of coordinates $d$, integer `≥ 1`.
        - `init_scale`: $\alpha > 0$, finite (may be traced). The init is deterministic:
            $u = \sqrt2\,\alpha$, $v = 0$, so no key is needed. For other inits use model
            surgery (`eqx.tree_at`) or `gf.models.init.gaussian`.
        """
        self.in_size = _positive_int(in_size, "in_size")
        check_init_scale(init_scale)
        alpha = jnp.asarray(init_scale, dtype=jnp.float64)
        self.u = jnp.full((self.in_size,), jnp.sqrt(2.0) * alpha, dtype=jnp.float64)
        self.v = jnp.zeros((self.in_size,), dtype=jnp.float64)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the network to ONE example `x` of shape `(in_size,)`; returns shape `(1,)`."""
        if jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"DiagonalLinear acts on one example: `x` must have shape ({self.in_size},), "
                f"got {jnp.shape(x)}. For a batch of rows use `jax.vmap(model)(x)`."
            )
        return jnp.dot(self.beta(), x)[None]

    def beta(self) -> jax.Array:
        r"""The regression vector $\beta = u \odot v$, shape `(in_size,)`."""
        return self.u * self.v

    def units(self) -> jax.Array:
        r"""Per-coordinate norms $\sqrt{u_i^2 + v_i^2}$, shape `(in_size,)`.

        Equal to $\sqrt2\,\alpha\sqrt{\cosh 2s_i}$ on the standard init: a coordinate that has
        not activated stays near $\sqrt2\,\alpha$.
        """
        return jnp.sqrt(self.u**2 + self.v**2)

    def alpha(self) -> jax.Array:
        r"""The conserved scale $\alpha_i = \sqrt{(u_i^2 - v_i^2)/2}$, shape `(in_size,)`.

        $u_i^2 - v_i^2$ is a constant of the flow, so this recovers the init scale from any
        time along the trajectory (negative differences give `nan`).
        """
        return jnp.sqrt((self.u**2 - self.v**2) / 2)
