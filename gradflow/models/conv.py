r"""One-dimensional convolutional network: H bias-free kernels, then a linear readout."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import positive_int as _positive_int
from ..data.patches import num_positions, patches
from ..data.sampling import normal_arrays
from ._activations import apply, check_activation
from ._checks import check_init_scale


class Conv1D(eqx.Module):
    r"""$f_o(x) = \sum_{h=1}^{H}\sum_p r_{o,h,p}\,\sigma(k_h^\top x_p)$, $x_p$ the windows of $x$.

    A convolutional layer of $H$ kernels of size $k$ (stride $s$, no padding, no bias),
    followed by a linear readout over all positions. Unit $h$ is the kernel $k_h$ with its
    readout $r_{:,h,:}$ (THEORY.md §1.2, "convolutional"). Linear $\sigma$ is Type I (the
    number of independent kernels, the rank of `kernel_map()`, grows by one per plateau);
    ReLU is Type II (kernels collapse onto rays).

    **Fields:**

    - `kernels`: shape `(num_kernels, kernel_size)`.
    - `readout`: shape `(out_size, num_kernels, positions)`, `positions =
        (in_size - kernel_size) // stride + 1`.
    - `in_size`, `num_kernels`, `kernel_size`, `out_size`, `stride`, `activation`: static.
    """

    kernels: jax.Array
    readout: jax.Array
    in_size: int = eqx.field(static=True)
    num_kernels: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    stride: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    #: Axis of each field that indexes the units (the kernels).
    UNIT_AXES: ClassVar[dict[str, int]] = {"kernels": 0, "readout": 1}

    def __init__(
        self,
        in_size: int,
        num_kernels: int,
        kernel_size: int,
        out_size: int = 1,
        activation: str = "linear",
        init_scale=1e-3,
        *,
        stride: int = 1,
        key,
    ):
        r"""**Arguments:**

        - `in_size`: signal length $L$; `num_kernels`: $H$; `kernel_size`: $k \le L$;
            `out_size`: outputs; all integers `≥ 1`.
        - `activation`: one of `"linear"`, `"relu"`, `"quadratic"`, `"xtanh"`, `"cubic"`,
            `"tanh"`.
        - `init_scale`: per-entry std $\varepsilon$ of the i.i.d. Gaussian init, positive.
        - `stride`: window stride `≥ 1`.
        - `key`: a `jax.random` key.
        """
        self.in_size = _positive_int(in_size, "in_size")
        self.num_kernels = _positive_int(num_kernels, "num_kernels")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.out_size = _positive_int(out_size, "out_size")
        self.stride = _positive_int(stride, "stride")
        self.activation = check_activation(activation)
        check_init_scale(init_scale)
        n_pos = num_positions(self.in_size, self.kernel_size, self.stride)
        shapes = [(self.num_kernels, self.kernel_size), (self.out_size, self.num_kernels, n_pos)]
        self.kernels, self.readout = normal_arrays(key, shapes, init_scale)

    @property
    def positions(self) -> int:
        return self.readout.shape[-1]

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the network to ONE signal `x` of shape `(in_size,)`; returns `(out_size,)`."""
        if jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"Conv1D acts on one example: `x` must have shape ({self.in_size},), got "
                f"{jnp.shape(x)}. For a batch of rows use `jax.vmap(model)(x)`."
            )
        z = patches(x, self.kernel_size, self.stride) @ self.kernels.T  # (positions, H)
        return jnp.einsum("ohp,ph->o", self.readout, apply(self.activation, z))

    def units(self) -> jax.Array:
        r"""Per-kernel norms $\sqrt{\|k_h\|^2 + \|r_{:,h,:}\|^2}$, shape `(num_kernels,)`."""
        return jnp.sqrt(jnp.sum(self.kernels**2, axis=1) + jnp.sum(self.readout**2, axis=(0, 2)))

    def kernel_map(self) -> jax.Array:
        r"""$M = \sum_h \mathrm{vec}(r_{:,h,:})\,k_h^\top$, shape `(out_size·positions, k)`.

        A linear conv net computes $f_o(x) = \sum_p M_{(o,p)}^\top x_p$, a linear function of
        the windows: its rank is the number of independent kernels in use (Type I).
        """
        r = jnp.reshape(jnp.moveaxis(self.readout, 1, -1), (-1, self.num_kernels))
        return r @ self.kernels
