r"""Deep ReLU network $f(x) = W_L\,\mathrm{relu}(\cdots \mathrm{relu}(W_1 x + b_1) \cdots)$."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import positive_int as _positive_int
from ..data.sampling import normal_arrays
from ._checks import check_bool, check_init_scale


class DeepReLU(eqx.Module):
    r"""Fully connected ReLU network with `depth` weight matrices (linear readout).

    From a small init the first escape from the saddle at 0 follows an escape direction in
    which deeper layers are closer to rank one (Bantzis, Simon & Jacot; THEORY.md §7), with
    the same depth scaling of the escape time as deep linear nets ($\propto \varepsilon^{-(L-2)}$
    for $L \ge 3$). The complexity measure is the numerical rank of every weight matrix.

    **Fields:**

    - `weights`: tuple of `depth` matrices, `weights[l]` of shape `(widths[l], widths[l-1])`
        with `widths = (in_size, *hidden, out_size)`.
    - `biases`: tuple of `depth - 1` hidden bias vectors, or `None`.
    - `in_size`, `hidden`, `out_size`, `depth`, `bias`: static (`hidden` a tuple of widths).
    """

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...] | None
    in_size: int = eqx.field(static=True)
    hidden: tuple[int, ...] = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    bias: bool = eqx.field(static=True)

    def __init__(
        self, in_size: int, width, out_size: int, depth: int, init_scale, bias=False, *, key
    ):
        r"""**Arguments:**

        - `in_size`, `out_size`: integers `≥ 1`; `depth`: number of weight matrices `≥ 2`.
        - `width`: an integer (every hidden layer) or a sequence of `depth - 1` widths.
        - `init_scale`: per-entry std $\varepsilon$ of the i.i.d. Gaussian init (positive).
        - `bias`: hidden biases (Gaussian with the same std).
        - `key`: a `jax.random` key.
        """
        self.in_size = _positive_int(in_size, "in_size")
        self.out_size = _positive_int(out_size, "out_size")
        self.depth = _positive_int(depth, "depth")
        if self.depth < 2:
            raise ValueError(f"`depth` must be ≥ 2 (one hidden layer), got {depth}.")
        if isinstance(width, int | bool) or not hasattr(width, "__len__"):
            self.hidden = (_positive_int(width, "width"),) * (self.depth - 1)
        else:
            self.hidden = tuple(_positive_int(w, "width") for w in width)
            if len(self.hidden) != self.depth - 1:
                raise ValueError(
                    f"`width` lists {len(self.hidden)} hidden widths but depth={depth} needs "
                    f"{self.depth - 1}."
                )
        self.bias = check_bool(bias, "bias")
        check_init_scale(init_scale)
        sizes = (self.in_size, *self.hidden, self.out_size)
        shapes = [(sizes[i + 1], sizes[i]) for i in range(self.depth)]
        shapes += [(h,) for h in self.hidden] if self.bias else []
        arrays = normal_arrays(key, shapes, init_scale)
        self.weights = tuple(arrays[: self.depth])
        self.biases = tuple(arrays[self.depth :]) if self.bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the network to ONE example `x` of shape `(in_size,)`; returns `(out_size,)`."""
        if jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"DeepReLU acts on one example: `x` must have shape ({self.in_size},), got "
                f"{jnp.shape(x)}. For a batch of rows use `jax.vmap(model)(x)`."
            )
        for i, w in enumerate(self.weights[:-1]):
            x = w @ x
            if self.biases is not None:
                x = x + self.biases[i]
            x = jax.nn.relu(x)
        return self.weights[-1] @ x

    def units(self) -> jax.Array:
        r"""Per-unit norms of the last hidden layer: incoming row, bias and outgoing column."""
        sq = jnp.sum(self.weights[-1] ** 2, axis=0) + jnp.sum(self.weights[-2] ** 2, axis=1)
        if self.biases is not None:
            sq = sq + self.biases[-1] ** 2
        return jnp.sqrt(sq)

    def layer_singular_values(self) -> tuple[jax.Array, ...]:
        """Singular values of every weight matrix (the per-layer low-rank bias)."""
        return tuple(jnp.linalg.svd(w, compute_uv=False) for w in self.weights)
