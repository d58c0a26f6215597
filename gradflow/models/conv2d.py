r"""Two-dimensional convolutional network: H bias-free k×k kernels, then a linear readout."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._misc import positive_int as _positive_int
from ..data.patches import num_positions
from ..data.sampling import normal_arrays
from ._activations import apply, check_activation
from ._checks import check_init_scale


def patches_2d(x: jax.Array, side: int, kernel_size: int, stride: int) -> jax.Array:
    """Windows of ONE image `x` (flattened row-major, length `side²`), shape
    `(positions², kernel_size²)`, each window flattened row-major."""
    n = num_positions(side, kernel_size, stride)
    start = stride * jnp.arange(n)
    offs = jnp.arange(kernel_size)
    rows = start[:, None, None, None] + offs[None, None, :, None]  # (n, 1, k, 1)
    cols = start[None, :, None, None] + offs[None, None, None, :]  # (1, n, 1, k)
    img = jnp.reshape(x, (side, side))
    return jnp.reshape(img[rows, cols], (n * n, kernel_size * kernel_size))


class Conv2D(eqx.Module):
    r"""$f_o(x) = \sum_{h=1}^{H}\sum_p r_{o,h,p}\,\sigma(k_h^\top x_p)$ over the k×k windows $x_p$.

    The 2-D counterpart of `Conv1D`: a square image of side $L$ (flattened row-major, so
    the input has `in_size = L²` entries), $H$ square kernels of size $k$ (stride $s$, no
    padding, no bias), a linear readout over all $n^2$ positions, $n = (L - k)//s + 1$. Unit
    $h$ is the kernel with its readout. Linear $\sigma$ is Type I (the rank of
    `kernel_map()` grows by one per plateau), ReLU Type II; `gf.analysis.complexity` measures
    both as for `Conv1D`.

    **Fields:**

    - `kernels`: shape `(num_kernels, kernel_size²)` (each kernel flattened row-major).
    - `readout`: shape `(out_size, num_kernels, positions)`, `positions = n²`.
    - `side`, `num_kernels`, `kernel_size`, `out_size`, `stride`, `activation`: static.
    """

    kernels: jax.Array
    readout: jax.Array
    side: int = eqx.field(static=True)
    num_kernels: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    stride: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    #: Axis of each field that indexes the units (the kernels).
    UNIT_AXES: ClassVar[dict[str, int]] = {"kernels": 0, "readout": 1}

    def __init__(
        self,
        side: int,
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

        - `side`: image side $L$ (inputs have `side²` entries); `num_kernels`: $H$;
            `kernel_size`: $k \le L$; `out_size`: outputs; all integers `≥ 1`.
        - `activation`: one of `"linear"`, `"relu"`, `"quadratic"`, `"xtanh"`, `"cubic"`,
            `"tanh"`.
        - `init_scale`: per-entry std $\varepsilon$ of the i.i.d. Gaussian init, positive.
        - `stride`: window stride `≥ 1` (both directions).
        - `key`: a `jax.random` key.
        """
        self.side = _positive_int(side, "side")
        self.num_kernels = _positive_int(num_kernels, "num_kernels")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.out_size = _positive_int(out_size, "out_size")
        self.stride = _positive_int(stride, "stride")
        self.activation = check_activation(activation)
        check_init_scale(init_scale)
        n = num_positions(self.side, self.kernel_size, self.stride)
        shapes = [
            (self.num_kernels, self.kernel_size**2),
            (self.out_size, self.num_kernels, n * n),
        ]
        self.kernels, self.readout = normal_arrays(key, shapes, init_scale)

    @property
    def in_size(self) -> int:
        return self.side * self.side

    @property
    def positions(self) -> int:
        return self.readout.shape[-1]

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the network to ONE flattened image `x` of shape `(side²,)`."""
        if jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"Conv2D acts on one flattened image: `x` must have shape ({self.in_size},) "
                f"(side {self.side} squared), got {jnp.shape(x)}. For a batch of rows use "
                "`jax.vmap(model)(x)`."
            )
        z = patches_2d(x, self.side, self.kernel_size, self.stride) @ self.kernels.T
        return jnp.einsum("ohp,ph->o", self.readout, apply(self.activation, z))

    def units(self) -> jax.Array:
        r"""Per-kernel norms $\sqrt{\|k_h\|^2 + \|r_{:,h,:}\|^2}$, shape `(num_kernels,)`."""
        return jnp.sqrt(jnp.sum(self.kernels**2, axis=1) + jnp.sum(self.readout**2, axis=(0, 2)))

    def kernel_map(self) -> jax.Array:
        r"""$M = \sum_h \mathrm{vec}(r_{:,h,:})\,k_h^\top$, shape `(out_size·positions, k²)`:
        a linear conv net is linear in the windows, with rank = independent kernels in use."""
        r = jnp.reshape(jnp.moveaxis(self.readout, 1, -1), (-1, self.num_kernels))
        return r @ self.kernels
