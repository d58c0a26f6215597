r"""Two-layer network $f(x) = \sum_j a_j\,\sigma(w_j^\top x + b_j)$ with a named activation."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import positive_int as _positive_int
from ..data.sampling import normal_arrays
from ._activations import apply, check_activation
from ._checks import check_bool, check_init_scale


class TwoLayer(eqx.Module):
    r"""Two-layer network $f(x) = a\,\sigma(w x + b)$: one hidden layer of `width` units.

    This is Eq. (1) of THEORY.md §1.2 with $g_{in} = g_{out} = \mathrm{id}$: unit $j$ is
    $\theta_j = [a_{:,j};\,w_j;\,b_j]$. The activation decides how units are recruited from a
    small init (THEORY.md §1.3, §1.6):

    - `"linear"`: Type I, the rank of `end_to_end()` grows by one per plateau;
    - `"relu"`: Type II, units collapse onto a few rays (kinks $-b_j/w_j$ in 1-D);
    - `"quadratic"` ($z^2$), `"xtanh"` ($z\tanh z$), `"cubic"` ($z^3$): Type III, units are
        recruited one at a time (`units()` shows which have grown);
    - `"tanh"`: rank-one first layer early, but a single drop (the negative control).

    **Fields:**

    - `w`: first layer, shape `(width, in_size)`.
    - `b`: hidden biases, shape `(width,)`, or `None` when `bias=False`.
    - `a`: readout, shape `(out_size, width)`.
    - `in_size`, `width`, `out_size`, `activation`, `bias`: static.
    """

    w: jax.Array
    b: jax.Array | None
    a: jax.Array
    in_size: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    bias: bool = eqx.field(static=True)

    #: Axis of each field that indexes the units (used by unit surgery in `init_extra`).
    UNIT_AXES: ClassVar[dict[str, int]] = {"w": 0, "b": 0, "a": 1}

    def __init__(
        self,
        in_size: int,
        width: int,
        out_size: int,
        activation: str,
        bias: bool = False,
        init_scale=1e-3,
        *,
        key,
    ):
        r"""**Arguments:**

        - `in_size`, `width`, `out_size`: integers `≥ 1`.
        - `activation`: one of `"linear"`, `"relu"`, `"quadratic"`, `"xtanh"`, `"cubic"`,
            `"tanh"`.
        - `bias`: give each hidden unit a bias $b_j$ (needed for 1-D ReLU regression with
            kinks at $-b_j/w_j$; THEORY.md §4 folds it into the input instead).
        - `init_scale`: per-entry standard deviation $\varepsilon$ of the i.i.d. Gaussian init
            of `w`, `b` and `a`; positive and finite (may be traced). Other inits (balanced,
            aligned units) are model surgery: see `gf.models.init_extra`.
        - `key`: a `jax.random` key.
        """
        self.in_size = _positive_int(in_size, "in_size")
        self.width = _positive_int(width, "width")
        self.out_size = _positive_int(out_size, "out_size")
        self.activation = check_activation(activation)
        self.bias = check_bool(bias, "bias")
        check_init_scale(init_scale)
        shapes = [(self.width, self.in_size), (self.out_size, self.width)]
        if self.bias:
            shapes.append((self.width,))
        arrays = normal_arrays(key, shapes, init_scale)
        self.w, self.a = arrays[0], arrays[1]
        self.b = arrays[2] if self.bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the network to ONE example `x` of shape `(in_size,)`; returns `(out_size,)`.

        For a batch use `jax.vmap(model)(xs)`.
        """
        if jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"TwoLayer acts on one example: `x` must have shape ({self.in_size},), got "
                f"{jnp.shape(x)}. For a batch of rows use `jax.vmap(model)(x)`."
            )
        return self.a @ apply(self.activation, self.preactivation(x))

    def preactivation(self, x: jax.Array) -> jax.Array:
        """$w x + b$ for one example, shape `(width,)`."""
        z = self.w @ x
        return z if self.b is None else z + self.b

    def units(self) -> jax.Array:
        r"""Per-unit norms $\sqrt{\|a_{:,j}\|^2 + \|w_j\|^2 + b_j^2}$, shape `(width,)`.

        Units still $O(\varepsilon)$ have not been recruited; a zero unit stays exactly zero.
        """
        sq = jnp.sum(self.a**2, axis=0) + jnp.sum(self.w**2, axis=1)
        if self.b is not None:
            sq = sq + self.b**2
        return jnp.sqrt(sq)

    def end_to_end(self) -> jax.Array:
        """The linear map $a w$, shape `(out_size, in_size)` (`activation="linear"`, no bias)."""
        if self.activation != "linear" or self.bias:
            raise ValueError(
                "`end_to_end()` is the product a @ w of a linear network without bias; this "
                f"model has activation={self.activation!r}, bias={self.bias}."
            )
        return self.a @ self.w

    def quadratic_form(self) -> jax.Array:
        r"""$M_o = \sum_j a_{oj}\,w_j w_j^\top$, shape `(out_size, in_size, in_size)`.

        A quadratic network without bias computes $f_o(x) = x^\top M_o x$ exactly; with
        Gaussian inputs its population loss depends on $M$ only (THEORY.md §1.6; see
        `gf.data.quadratic_population_loss`).
        """
        if self.activation != "quadratic" or self.bias:
            raise ValueError(
                "`quadratic_form()` needs activation='quadratic' and bias=False; this model "
                f"has activation={self.activation!r}, bias={self.bias}."
            )
        return jnp.einsum("oj,ji,jk->oik", self.a, self.w, self.w)
