r"""Alignment of units: Theorem-4 misalignment (linear nets) and early alignment (ReLU).

**Misalignment (THEORY.md §1.5, Theorem 4).** For a two-layer net linear in its units,
$f = \sum_i v_i u_i^\top z$, write $\Sigma_{yz} = \sum_k s_k q_k r_k^\top$ and unit
$\theta_i = [v_i; u_i]$. The learned top-$r$ subspace has the projector
$P = \tfrac12\sum_{k \le r} [q_k; r_k][q_k; r_k]^\top$. From an i.i.d.
$N(0, \varepsilon^2)$ init, when the top modes reach $O(1)$ the rest is
$\|(I - P)\theta_i\| = O(\varepsilon^{1 - s_{r+1}/s_1})$:
the component along mode $r+1$ grew like $e^{s_{r+1}t}$ for the $t \approx \ln(1/\varepsilon)/s_1$
it took mode 1 to grow, everything else grew less. [`misalignment`][] measures it (a metric),
[`half_strength_stop`][] stops a flow when a mode reaches half strength, and
[`misalignment_at_half_strength`][] reads it off a solution at that moment.

**Early alignment (THEORY.md §4, Boursier & Flammarion).** From a small init the norms of a
two-layer ReLU net stay small for a while, and the neuron directions
$(w_j, b_j)/\|(w_j, b_j)\|$ flow on the sphere towards a few extremal directions (for a
positive readout: directions $w$ with $D(w) \parallel w$,
$D(w) = \frac1n\sum_k y_k 1[\langle w, \tilde x_k\rangle > 0]\tilde x_k$, $\tilde x = (x, 1)$).
[`neuron_cosines`][] and [`aligned_fraction`][] measure this; [`alignment_metric`][] records it
along a flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..models import DeepLinear, TwoLayer
from .metrics import _teacher_svd

# ---- Theorem 4 -------------------------------------------------------------------------------


def _linear_units(model):
    """`(W_in, W_out)` of a two-layer net linear in its units: shapes `(H, in)`, `(out, H)`."""
    if isinstance(model, DeepLinear) and model.depth == 2:
        return model.weights[0], model.weights[1]
    if isinstance(model, TwoLayer) and model.activation == "linear" and not model.bias:
        return model.w, model.a
    raise TypeError(
        "Theorem-4 misalignment needs a two-layer network linear in its units: "
        "gf.models.DeepLinear(depth=2) or gf.models.TwoLayer(activation='linear', bias=False); "
        f"got {type(model).__name__}"
        + (f"(depth={model.depth})" if isinstance(model, DeepLinear) else "")
        + "."
    )


def _top(data, rank):
    u, s, v = _teacher_svd(data)
    if not 1 <= rank <= s.shape[0]:
        raise ValueError(
            f"`rank` must be between 1 and the number of modes of Σ_yx ({s.shape[0]}), got {rank}."
        )
    return u[:, :rank], v[:, :rank]


def misalignment(model, data, rank: int = 1) -> jax.Array:
    r"""Per-unit norm outside the learned top-`rank` subspace, $\|(I - P)\theta_i\|$.

    Unit $i$ is $\theta_i = [v_i; u_i]$ (outgoing column, incoming row of the hidden unit);
    $P = \tfrac12 \sum_{k \le r} [q_k; r_k][q_k; r_k]^\top$ with $q_k, r_k$ the singular vectors
    of $\Sigma_{yx}$ (the stored teacher if there is one, else the SVD of $Y^\top X / P$).
    Computed as the norm of the explicit residual (no cancellation when it is tiny).
    Jittable; use it as a metric: `metrics={"mis": gf.analysis.misalignment}`.

    **Arguments:**

    - `model`: `DeepLinear` with `depth=2`, or a linear `TwoLayer` without bias.
    - `data`: the dataset defining $\Sigma_{yx}$.
    - `rank`: $r$, the number of learned modes (the multiplicity of $s_1$ in Theorem 4).

    **Returns:** shape `(width,)`.
    """
    w_in, w_out = _linear_units(model)
    q, r = _top(data, rank)
    coef = q.T @ w_out + r.T @ w_in.T  # (rank, H): q_kᵀ v_i + r_kᵀ u_i
    res_out = w_out - 0.5 * q @ coef
    res_in = w_in.T - 0.5 * r @ coef
    return jnp.sqrt(jnp.sum(res_out**2, axis=0) + jnp.sum(res_in**2, axis=0))


def half_strength_stop(data, mode: int = 0) -> Callable:
    r"""A `stop_when` for `gf.flow` that fires when mode `mode` reaches half its strength.

    Returns `fn(model) = q_k^\top W r_k - s_k/2` (root-found by the solver, so the final
    state is the half-strength state to solver precision). Create it once and reuse it:
    the function object is part of the compiled solve.
    """
    u, s, v = (np.asarray(a) for a in _teacher_svd(data))
    if not 0 <= mode < s.size:
        raise ValueError(f"`mode` must be in [0, {s.size}), got {mode}.")
    qk, rk, half = jnp.asarray(u[:, mode]), jnp.asarray(v[:, mode]), 0.5 * float(s[mode])

    def stop(model):
        return qk @ model.end_to_end() @ rk - half

    return stop


@dataclass
class Misalignment:
    r"""What [`misalignment_at_half_strength`][] measures.

    - `time`: when mode `mode` first reached half strength.
    - `per_unit`: $\|(I - P)\theta_i\|$ then, shape `(width,)`; `total`: their root sum of
        squares (the misalignment of the whole weight matrix).
    - `aligned`: $\|P\Theta\|_F$ then (the learned part, $O(1)$).
    - `rank`, `mode`: the subspace and the mode that set the moment.
    - `theory_exponent`: $1 - s_{r+1}/s_1$ (1 when no mode is left), the predicted power of
        $\varepsilon$ (`gf.theory.theorem4_exponent`).
    """

    time: float
    per_unit: np.ndarray
    total: float
    aligned: float
    rank: int
    mode: int
    theory_exponent: float


def misalignment_at_half_strength(solution, data, rank: int = 1, mode: int | None = None):
    r"""Theorem-4 misalignment of a solution at the moment mode `mode` reaches half strength.

    The moment is taken from the solution's saved trajectory (`save_params=True`: first save
    where $q_k^\top W r_k \ge s_k/2$, the misalignment interpolated linearly in log between the
    two saves around it, as it grows exponentially), or — without a trajectory — it is the final
    state of a solve stopped by [`half_strength_stop`][] (`status == "stopped"`).

    **Arguments:**

    - `solution`: a `FlowSolution` of a linear two-layer model (see [`misalignment`][]).
    - `data`: the dataset of the flow.
    - `rank`: the learned subspace, $r$.
    - `mode`: the mode whose half strength sets the moment (default `rank − 1`, the last
        learned one).

    **Returns:** a [`Misalignment`][].
    """
    from ..theory import theorem4_exponent

    mode = rank - 1 if mode is None else int(mode)
    s = np.asarray(_teacher_svd(data)[1])
    u, _, v = _teacher_svd(data)
    expo = float(theorem4_exponent(s, rank))
    q, r = _top(data, rank)
    if solution.trajectory is None:
        if solution.status != "stopped":
            raise ValueError(
                "Need the moment of half strength: save the trajectory (`save_params=True`) "
                "or stop the solve there with stop_when=gf.analysis.half_strength_stop(data)."
            )
        model = solution.model
        per = np.asarray(misalignment(model, data, rank))
        w_in, w_out = _linear_units(model)
        aligned = float(jnp.linalg.norm(q.T @ w_out + r.T @ w_in.T) / np.sqrt(2.0))
        return Misalignment(float(solution.t_final), per, float(np.sqrt(np.sum(per**2))),
                            aligned, rank, mode, expo)  # fmt: skip
    t = np.asarray(solution.t, float)

    def summary(m):
        w_in, w_out = _linear_units(m)
        strength = u[:, mode] @ (w_out @ w_in) @ v[:, mode]
        aligned = jnp.linalg.norm(q.T @ w_out + r.T @ w_in.T) / np.sqrt(2.0)
        return strength, misalignment(m, data, rank), aligned

    strength, per, aligned = (np.asarray(a) for a in jax.vmap(summary)(solution.trajectory))
    half = 0.5 * float(s[mode])
    above = np.flatnonzero(np.isfinite(t) & (strength >= half))
    if above.size == 0:
        raise ValueError(f"Mode {mode} never reaches half strength {half:.6g} in the solution.")
    i = above[0]
    if i == 0:
        raise ValueError(f"Mode {mode} is already at half strength at the first save.")
    frac = (half - strength[i - 1]) / (strength[i] - strength[i - 1])
    mis = np.exp((1 - frac) * np.log(per[i - 1]) + frac * np.log(per[i]))
    return Misalignment(
        float(t[i - 1] + frac * (t[i] - t[i - 1])), mis, float(np.sqrt(np.sum(mis**2))),
        float(aligned[i - 1] + frac * (aligned[i] - aligned[i - 1])), rank, mode, expo,
    )  # fmt: skip


# ---- early alignment (ReLU) ----------------------------------------------------------------


def _relu_units(model):
    if not isinstance(model, TwoLayer) or model.activation != "relu":
        raise TypeError(
            "Early alignment is measured on gf.models.TwoLayer(activation='relu'); got "
            f"{type(model).__name__}"
            + (f"(activation={model.activation!r})" if isinstance(model, TwoLayer) else "")
            + "."
        )
    return model.w if model.b is None else jnp.column_stack([model.w, model.b])


def _unit_rows(directions, dim):
    d = jnp.atleast_2d(jnp.asarray(directions, jnp.float64))
    if d.shape[-1] != dim:
        raise ValueError(
            f"`directions` must have {dim} entries per row (the input size, plus one for the "
            f"bias), got shape {d.shape}."
        )
    return d / jnp.linalg.norm(d, axis=1, keepdims=True)


def neuron_cosines(model, directions) -> jax.Array:
    r"""Cosines between neuron directions $(w_j, b_j)/\|(w_j, b_j)\|$ and given directions.

    **Arguments:**

    - `model`: a ReLU `TwoLayer` (with or without bias; the bias is the last coordinate).
    - `directions`: shape `(K, in_size [+ 1])` or one direction; normalised here.

    **Returns:** shape `(width, K)`; rows of zero neurons are 0.
    """
    units = _relu_units(model)
    dirs = _unit_rows(directions, units.shape[1])
    norms = jnp.linalg.norm(units, axis=1, keepdims=True)
    return (units / jnp.where(norms > 0, norms, 1.0)) @ dirs.T


def aligned_fraction(
    model, directions, *, tol: float = 1e-2, sign: int | None = None, weighted: bool = False
) -> jax.Array:
    r"""Fraction of neurons aligned with one of `directions` (cosine $> 1 -$ `tol`).

    **Arguments:**

    - `model`, `directions`: as in [`neuron_cosines`][].
    - `tol`: alignment tolerance on the cosine (0.01 ≈ 8°).
    - `sign`: count only neurons whose (scalar) readout $a_j$ has this sign (`+1` or `-1`);
        e.g. `+1` with the extremal directions of positive neurons.
    - `weighted`: weight neuron $j$ by its squared norm $\|a_j\|^2 + \|w_j\|^2 + b_j^2$
        ("all large neurons are aligned" is a weighted fraction near 1).

    **Returns:** a scalar in [0, 1] (`nan` if no neuron qualifies). Jittable.
    """
    if not 0 < tol < 2:
        raise ValueError(f"`tol` must be in (0, 2), got {tol}.")
    aligned = jnp.max(neuron_cosines(model, directions), axis=1) > 1 - tol
    weight = model.units() ** 2 if weighted else jnp.ones(model.width)
    if sign is not None:
        if sign not in (1, -1):
            raise ValueError(f"`sign` must be +1, -1 or None, got {sign!r}.")
        if model.out_size != 1:
            raise ValueError("`sign` needs a scalar readout (out_size = 1).")
        weight = weight * (jnp.sign(model.a[0]) == sign)
    return jnp.sum(weight * aligned) / jnp.sum(weight)


def alignment_metric(directions, **kwargs) -> Callable:
    """[`aligned_fraction`][] as a metric `fn(model, data)` for `gf.flow(metrics=...)`.

    **Example:**

    ```python
    frac = gf.analysis.alignment_metric(extremal, sign=+1)
    sol = gf.flow(model, data, t1=8.0, metrics={"aligned": frac})
    ```
    """
    dirs = np.asarray(directions, float)

    def metric(model, data):
        return aligned_fraction(model, dirs, **kwargs)

    return metric
