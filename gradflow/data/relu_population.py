r"""Exact Gaussian-input loss of bias-free ReLU nets (two-layer FC and non-overlapping conv).

For $x \sim N(0, I)$ the second moments of ReLU units are the arc-cosine kernel (Cho & Saul)

$$E[\mathrm{relu}(u^\top x)\,\mathrm{relu}(v^\top x)] = \frac{\|u\|\|v\|}{2\pi}
\big(\sqrt{1 - c^2} + (\pi - \arccos c)\,c\big),\quad c = \frac{u^\top v}{\|u\|\|v\|},
\qquad E[\mathrm{relu}(u^\top x)] = \frac{\|u\|}{\sqrt{2\pi}}.$$

A conv net with stride = kernel size sees independent Gaussian windows, so units at
different positions only meet through their means. The loss
$\frac12 E\|f(x) - g(x)\|^2$ between a student and a teacher of the same family is then a
closed form of the weights: no samples, hence no sampling noise and none of the
activation-boundary sliding that makes sampled ReLU flows take tens of thousands of steps.

$d\kappa/dc = \pi - \arccos c$ is finite at $c = \pm 1$ (aligned units, where the flow goes),
but the two terms of $\kappa$ differentiated separately are not: `_arccos_kernel` carries its
derivative explicitly (`jax.custom_jvp`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..models.conv import Conv1D
from ..models.two_layer import TwoLayer

_TWO_PI = 2.0 * jnp.pi


@jax.custom_jvp
def _kappa(c):
    c = jnp.clip(c, -1.0, 1.0)
    return jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0)) + (jnp.pi - jnp.arccos(c)) * c


@_kappa.defjvp
def _kappa_jvp(primals, tangents):
    (c,), (dc,) = primals, tangents
    return _kappa(c), (jnp.pi - jnp.arccos(jnp.clip(c, -1.0, 1.0))) * dc


def _safe_norm(w):
    # the gradient of ‖w‖ at w = 0 is 0 here (not nan): zero units stay exactly zero (V12 b)
    sq = jnp.sum(w**2, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def _arccos_kernel(u, v):
    """$E[\\mathrm{relu}(u_i^\\top x)\\,\\mathrm{relu}(v_j^\\top x)]$, shape `(len(u), len(v))`."""
    nu, nv = _safe_norm(u), _safe_norm(v)
    denom = nu[:, None] * nv[None, :]
    ok = denom > 0
    c = jnp.where(ok, (u @ v.T) / jnp.where(ok, denom, 1.0), 0.0)
    return denom * _kappa(c) / _TWO_PI


def _factors(model):
    """Kernels `(H, k)` and readout `(out, H, positions)` of a bias-free ReLU model."""
    if isinstance(model, Conv1D):
        if model.activation != "relu" or model.stride != model.kernel_size:
            raise ValueError(
                "relu_population_loss needs a ReLU Conv1D with stride == kernel_size "
                f"(independent windows); got activation={model.activation!r}, "
                f"stride={model.stride}, kernel_size={model.kernel_size}."
            )
        return model.kernels, model.readout
    if isinstance(model, TwoLayer):
        if model.activation != "relu" or model.bias:
            raise ValueError(
                "relu_population_loss needs a bias-free ReLU TwoLayer; got "
                f"activation={model.activation!r}, bias={model.bias}."
            )
        return model.w, model.a[:, :, None]
    raise TypeError(
        "relu_population_loss needs a ReLU gf.models.Conv1D or TwoLayer, got "
        f"{type(model).__name__}."
    )


def _cross(ka, ra, kb, rb):
    r"""$\sum_o E[f_o g_o]$ for two models given by kernels and readouts."""
    same = _arccos_kernel(ka, kb)  # same window
    ma, mb = _safe_norm(ka) / jnp.sqrt(_TWO_PI), _safe_norm(kb) / jnp.sqrt(_TWO_PI)
    # all position pairs through the means, then the diagonal p = q corrected to the kernel
    mean_a = jnp.einsum("ohp,h->op", ra, ma)
    mean_b = jnp.einsum("ohp,h->op", rb, mb)
    all_pairs = jnp.sum(jnp.sum(mean_a, axis=1) * jnp.sum(mean_b, axis=1))
    diagonal = jnp.einsum("ohp,hg,ogp->", ra, same, rb) - jnp.sum(mean_a * mean_b)
    return all_pairs + diagonal


def relu_population_loss(model, teacher) -> jax.Array:
    r"""Exact $\frac12 E_{x \sim N(0, I)}\|f(x) - g(x)\|^2$ of a ReLU student $f$, teacher $g$.

    Use it as a loss with the teacher as the "data":
    `gf.flow(model, teacher, loss=gf.data.relu_population_loss)`. It equals the limit of
    `gf.losses.mse` on ever more Gaussian samples labelled by the teacher.

    **Arguments:**

    - `model`: a bias-free ReLU `gf.models.TwoLayer`, or a ReLU `gf.models.Conv1D` with
        `stride == kernel_size` (non-overlapping, hence independent, windows).
    - `teacher`: a model of the same kind and input/output shapes (any width / number of
        kernels).

    **Returns:** a scalar.
    """
    ks, rs = _factors(model)
    kt, rt = _factors(teacher)
    if ks.shape[1] != kt.shape[1] or rs.shape[0] != rt.shape[0] or rs.shape[2] != rt.shape[2]:
        raise ValueError(
            "`model` and `teacher` must have the same input, kernel and output shapes: got "
            f"kernels {ks.shape} / {kt.shape}, readouts {rs.shape} / {rt.shape}."
        )
    ff = _cross(ks, rs, ks, rs)
    gg = _cross(kt, rt, kt, rt)
    fg = _cross(ks, rs, kt, rt)
    return 0.5 * (ff - 2.0 * fg + gg)
