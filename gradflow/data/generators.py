r"""Datasets for the architecture zoo (THEORY.md §9, "Datasets").

- `quadratic_teacher`, `quadratic_population_loss`: Gaussian inputs, $y = x^\top T x$
    (quadratic nets, THEORY.md §1.6; VALIDATION V5, V7).
- `orthogonal_relu_data`: a few orthogonal inputs with signed targets, for ReLU pictures.
- `boursier_three_points`, `stewart`: the 1-D ReLU datasets of Boursier & Flammarion (§4).
- `sparse_regression`: a small sparse linear problem for diagonal nets (§8).
- `conv_teacher`: 1-D signals labelled by a teacher conv net with orthonormal kernels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._misc import as_float64
from .._misc import positive_int as _positive_int
from .dataset import Dataset, LinearTeacher
from .orthogonal import orthonormalise
from .patches import num_positions, patches
from .sampling import normal_arrays


def quadratic_teacher(T, num_examples: int, *, key) -> Dataset:
    r"""Gaussian inputs $x \sim N(0, I_D)$ with targets $y = x^\top T x$.

    The population loss of a quadratic net $f(x) = x^\top M x$ on this data is
    `quadratic_population_loss` (use it instead of the samples to avoid sampling noise).

    **Arguments:**

    - `T`: symmetric `(D, D)` matrix, finite.
    - `num_examples`: number of samples $P \ge 1$.
    - `key`: a `jax.random` key.

    **Returns:** `Dataset(x, y)` with `x` of shape `(P, D)`, `y` of shape `(P, 1)`.
    """
    t = _symmetric(T, "T")
    p = _positive_int(num_examples, "num_examples")
    (x,) = normal_arrays(key, [(p, t.shape[0])], 1.0)
    return Dataset(x, jnp.einsum("pi,ij,pj->p", x, t, x))


def quadratic_population_loss(model, T) -> jax.Array:
    r"""Exact Gaussian-input loss $\frac12[(\mathrm{tr}(T - M))^2 + 2\|T - M\|_F^2]$.

    This is $\frac12 E(x^\top M x - x^\top T x)^2$ for $x \sim N(0, I)$ and symmetric $M$, $T$
    (THEORY.md §1.6). Use it as a loss: `gf.flow(model, T, loss=quadratic_population_loss)`
    (the "data" is then $T$ itself).

    **Arguments:**

    - `model`: a scalar-output model with `quadratic_form()` (a quadratic `TwoLayer` without
        bias), or the matrix $M$ itself, shape `(D, D)`.
    - `T`: the teacher matrix, shape `(D, D)`, symmetric.
    """
    if hasattr(model, "quadratic_form"):
        m = model.quadratic_form()
        if m.shape[0] != 1:
            raise ValueError(
                "quadratic_population_loss needs a scalar-output model, got "
                f"out_size={m.shape[0]}."
            )
        m = m[0]
    else:
        m = jnp.asarray(model)
    t = jnp.asarray(T)
    if m.shape != t.shape:
        raise ValueError(f"`model`'s quadratic form has shape {m.shape} but `T` has {t.shape}.")
    d = t - (m + m.T) / 2
    return 0.5 * (jnp.trace(d) ** 2 + 2 * jnp.sum(d**2))


def orthogonal_relu_data(targets=(1.0, -0.6), *, in_size: int | None = None) -> Dataset:
    r"""Orthogonal inputs $x_\mu = \sqrt P\,e_\mu$ with the given scalar targets.

    With $P$ = `len(targets)` examples the inputs are exactly whitened ($X^\top X / P = I$ on
    their span), and each example is reachable by its own ReLU ray: from a small init the
    units collapse onto the rays $e_\mu$ (a positive readout for positive targets, negative
    for negative ones), one ray per plateau in order of $|y_\mu|$. With `in_size = 2` the
    first-layer weights can be drawn as points in the plane.

    **Arguments:**

    - `targets`: the $P$ scalar targets, finite, non-zero.
    - `in_size`: input dimension `≥ P` (default `P`).

    **Returns:** `Dataset(x, y)` with `x` of shape `(P, in_size)`, `y` of shape `(P, 1)`.
    """
    y = as_float64(targets, "targets").reshape(-1)
    p = y.shape[0]
    d = p if in_size is None else _positive_int(in_size, "in_size")
    if d < p:
        raise ValueError(f"`in_size`={d} must be ≥ the number of targets {p}.")
    return Dataset(np.sqrt(p) * np.eye(p, d), y)


#: Boursier & Flammarion's three points (1-D input, hidden bias on), THEORY.md §4.
THREE_POINTS_X = (-0.75, -0.5, 0.125)
THREE_POINTS_Y = (1.1, 0.1, 0.8)
#: Knots of the "Stewart" target, linearly interpolated on [-1, 1], THEORY.md §4.
STEWART_X = (-1.0, -0.7, -0.55, -0.4, 0.0, 0.5, 0.6, 0.7, 1.0)
STEWART_Y = (0.0, 0.7, 0.5, 1.0, 0.0, 1.0, 0.6, 0.7, 0.0)


def boursier_three_points() -> Dataset:
    """The 3-point dataset of Boursier & Flammarion: x = (−0.75, −0.5, 0.125),
    y = (1.1, 0.1, 0.8), shapes `(3, 1)`.

    The middle point lies below the best affine fit; at small init a bias-ReLU net ends at the
    affine least-squares fit with every kink outside the data (THEORY.md §4).
    """
    return Dataset(np.array(THREE_POINTS_X), np.array(THREE_POINTS_Y))


def stewart(num: int = 40, *, key) -> Dataset:
    """`num` points uniform on [−1, 1] (sorted), targets by linear interpolation through the
    knots `STEWART_X`, `STEWART_Y` (Boursier & Flammarion's code). Shapes `(num, 1)`."""
    num = _positive_int(num, "num")
    x = np.sort(np.asarray(jax.random.uniform(key, (num,), jnp.float64, -1.0, 1.0)))
    return Dataset(x, np.interp(x, STEWART_X, STEWART_Y))


def sparse_regression(n: int, d: int, k: int, *, key) -> Dataset:
    r"""A sparse linear problem $y = X\beta^*$ with $k$ non-zero coordinates.

    $X$ has i.i.d. $N(0, 1)$ entries; $\beta^*$ has $k$ randomly placed non-zeros with random
    signs and magnitudes $1, \dots, 1/k$ (linearly spaced, so they activate at distinct times
    in a diagonal net, THEORY.md §8). $\beta^*$ is stored as the teacher:
    `data.teacher.matrix()[0]` (note $X$ is not whitened, so $\Sigma_{yx} \ne \beta^{*\top}$).

    **Arguments:**

    - `n`: number of examples `≥ 1`; `d`: dimension `≥ 1`; `k`: sparsity, `1 ≤ k ≤ d`.
    - `key`: a `jax.random` key.
    """
    n, d, k = (_positive_int(v, name) for v, name in ((n, "n"), (d, "d"), (k, "k")))
    if k > d:
        raise ValueError(f"`k`={k} non-zeros do not fit in dimension `d`={d}.")
    k_x, k_perm, k_sign = jax.random.split(key, 3)
    (x,) = normal_arrays(k_x, [(n, d)], 1.0)
    where = np.asarray(jax.random.permutation(k_perm, d))[:k]
    signs = np.asarray(jax.random.rademacher(k_sign, (k,), dtype=jnp.float64))
    beta = np.zeros(d)
    beta[where] = signs * np.linspace(1.0, 1.0 / k, k)
    norm = np.linalg.norm(beta)
    teacher = LinearTeacher(np.ones((1, 1)), np.array([norm]), (beta / norm)[:, None])
    return Dataset(x, np.asarray(x) @ beta, teacher=teacher)


def conv_teacher(
    length: int,
    kernel_size: int,
    strengths,
    *,
    num_examples: int | None = None,
    stride: int | None = None,
    activation: str = "linear",
    key,
) -> Dataset:
    r"""1-D signals labelled by a teacher conv net with orthonormal kernels.

    $y = \sum_h s_h \sum_p r_{h,p}\,\sigma(k_h^\top x_p)$, $x_p$ the windows of the signal,
    $k_h$ orthonormal kernels, $r_h$ orthonormal readouts over positions, $s_h$ =
    `strengths`. With `num_examples=None` the signals are exactly whitened
    ($X = \sqrt L\,Q$, $P = L$ examples); with the default `stride = kernel_size` the windows
    then do not overlap and are whitened too, so for a linear conv student
    $L = \frac12\|M^* - M\|_F^2$ with $M^* = \sum_h s_h r_h k_h^\top$: a Type I problem whose
    singular values are exactly `strengths` (one kernel learned per plateau).

    **Arguments:**

    - `length`: signal length $L$; `kernel_size`: $k \le L$.
    - `strengths`: the $H$ teacher strengths $s_h$, `H ≤ kernel_size` and `H ≤` positions.
    - `num_examples`: `None` (exact whitening, $P = L$) or a sample count (i.i.d. $N(0, I)$).
    - `stride`: window stride (default `kernel_size`).
    - `activation`: `"linear"` or `"relu"`.
    - `key`: a `jax.random` key.
    """
    length = _positive_int(length, "length")
    kernel_size = _positive_int(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else _positive_int(stride, "stride")
    if activation not in ("linear", "relu"):
        raise ValueError(f"Unknown `activation`={activation!r}. Valid names: linear, relu.")
    s = as_float64(strengths, "strengths").reshape(-1)
    h, n_pos = s.shape[0], num_positions(length, kernel_size, stride)
    if h > min(kernel_size, n_pos):
        raise ValueError(
            f"{h} `strengths` need orthonormal kernels and readouts: H ≤ kernel_size "
            f"({kernel_size}) and H ≤ number of positions ({n_pos})."
        )
    p = length if num_examples is None else _positive_int(num_examples, "num_examples")
    g_x, g_k, g_r = normal_arrays(key, [(p, length), (kernel_size, h), (n_pos, h)], 1.0)
    x = np.sqrt(p) * orthonormalise(g_x) if num_examples is None else g_x
    kernels, readout = orthonormalise(g_k).T, orthonormalise(g_r).T  # (H, k), (H, P)
    z = jax.vmap(lambda xi: patches(xi, kernel_size, stride))(x) @ kernels.T  # (P, pos, H)
    if activation == "relu":
        z = jax.nn.relu(z)
    y = jnp.einsum("pqh,hq,h->p", z, readout, s)
    return Dataset(x, y)


def _symmetric(T, name: str) -> jax.Array:
    t = as_float64(T, name)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"`{name}` must be a square matrix, got shape {t.shape}.")
    if not bool(jnp.allclose(t, t.T, rtol=1e-12, atol=1e-12)):
        raise ValueError(f"`{name}` must be symmetric; pass (T + T.T) / 2.")
    return t
