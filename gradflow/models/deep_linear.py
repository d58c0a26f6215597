r"""Deep linear network $f(x) = W_L \cdots W_1 x$: the Type I architecture of THEORY.md."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import is_tracing
from .._misc import positive_int as _positive_int
from ..data.sampling import normal_arrays


class DeepLinear(eqx.Module):
    r"""Deep linear network $f(x) = W_L \cdots W_1 x$ without biases.

    The function is linear, but the gradient flow on the factors is not: from a small init it
    learns the teacher's modes one at a time (saddle to saddle). Write the teacher as
    $\Sigma_{yx} = \sum_k s_k\,q_k r_k^\top$; mode $k$ of the network has end-to-end strength
    $m_k = q_k^\top W_L \cdots W_1 r_k$. With a balanced, decoupled init
    (`gf.models.init.decoupled`) every mode obeys $\dot m = L\,m^{2 - 2/L}(s_k - m)$ on its own
    (THEORY.md §2). From a small random init the modes still rise in order of $s_k$, each one a
    sigmoidal drop of the loss, so the rank of `end_to_end()` grows by one per plateau. The
    units are the `width` neurons of the last hidden layer; `units()` reports their norms, and
    units that stay near the init scale have not been recruited.

    **Fields:**

    - `weights`: tuple of `depth` float64 matrices; `weights[0]` has shape `(width, in_size)`,
        `weights[-1]` has shape `(out_size, width)`, the ones between `(width, width)`. With
        `depth = 1` it is a single `(out_size, in_size)` matrix.
    - `in_size`, `width`, `out_size`, `depth`: static sizes.
    """

    weights: tuple[jax.Array, ...]
    in_size: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)

    def __init__(self, in_size: int, width: int, out_size: int, depth: int, init_scale, *, key):
        r"""**Arguments:**

        - `in_size`: input dimension, integer `≥ 1`.
        - `width`: hidden width, integer `≥ 1` (unused when `depth = 1`, but still stored).
        - `out_size`: output dimension, integer `≥ 1`.
        - `depth`: number of weight matrices $L$, integer `≥ 1` (`depth = 2` is one hidden
            layer).
        - `init_scale`: per-entry standard deviation $\varepsilon$ of the i.i.d. Gaussian init,
            positive and finite. This is the init scale of THEORY.md §0; small values (down to
            1e-12) start the flow near the saddle at the origin. May be traced (e.g. under a
            `vmap` over init scales), in which case it is not checked.
        - `key`: a `jax.random` key.

        Other inits (aligned, width-scaled, low-rank plus noise) are model surgery on this one:
        see `gf.models.init`.
        """
        self.in_size = _positive_int(in_size, "in_size")
        self.width = _positive_int(width, "width")
        self.out_size = _positive_int(out_size, "out_size")
        self.depth = _positive_int(depth, "depth")
        if not is_tracing(init_scale):
            try:
                scale = float(init_scale)
            except TypeError:
                raise TypeError(
                    f"`init_scale` must be a positive real number, got {init_scale!r}."
                ) from None
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(
                    f"`init_scale` must be positive and finite, got {init_scale}; use e.g. "
                    "1e-6 for a small init (zero would sit exactly on the saddle)."
                )
        shapes = _weight_shapes(self.in_size, self.width, self.out_size, self.depth)
        self.weights = normal_arrays(key, shapes, init_scale)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the network to ONE example.

        **Arguments:**

        - `x`: a vector of shape `(in_size,)`. For a batch use `jax.vmap(model)(xs)`.

        **Returns:** a vector of shape `(out_size,)`.
        """
        if jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"DeepLinear acts on one example: `x` must have shape ({self.in_size},), got "
                f"{jnp.shape(x)}. For a batch of rows use `jax.vmap(model)(x)`."
            )
        for w in self.weights:
            x = w @ x
        return x

    def end_to_end(self) -> jax.Array:
        r"""The product $W_L \cdots W_1$, shape `(out_size, in_size)`.

        The function the network computes; its rank and singular values are the complexity
        measures of a linear net (one more rank per saddle-to-saddle transition).
        """
        product = self.weights[0]
        for w in self.weights[1:]:
            product = w @ product
        return product

    def units(self) -> jax.Array:
        r"""Per-unit norms of the last hidden layer, shape `(width,)`.

        Unit $j$ is the pair (incoming row $W_{L-1}[j, :]$, outgoing column $W_L[:, j]$), and
        its norm is $\sqrt{\|W_L[:, j]\|^2 + \|W_{L-1}[j, :]\|^2}$: the $\theta_i = [v_i; u_i]$ of
        THEORY.md §1.2. Units that stay $O(\varepsilon)$ have not been recruited yet. With
        `depth = 1` there is no hidden layer; the column norms of the single matrix (one per
        input) are returned instead, shape `(in_size,)`.
        """
        w_out = self.weights[-1]
        out_sq = jnp.sum(w_out**2, axis=0)
        if self.depth == 1:
            return jnp.sqrt(out_sq)
        in_sq = jnp.sum(self.weights[-2] ** 2, axis=1)
        return jnp.sqrt(out_sq + in_sq)


def _weight_shapes(in_size: int, width: int, out_size: int, depth: int) -> list[tuple]:
    if depth == 1:
        return [(out_size, in_size)]
    return [(width, in_size)] + [(width, width)] * (depth - 2) + [(out_size, width)]
