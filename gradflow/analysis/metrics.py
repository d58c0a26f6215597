"""Summaries to record along a flow: `fn(model, data) -> array`, passed as `metrics=`."""

from __future__ import annotations

import jax.numpy as jnp


def _teacher_svd(data):
    """(U, s, V) of the input–output correlation Σ_yx = (1/P) Yᵀ X (or the stored teacher)."""
    teacher = getattr(data, "teacher", None)
    if teacher is not None:
        return teacher.u, teacher.s, teacher.v
    sigma_yx = data.y.T @ data.x / data.x.shape[0]
    u, s, vt = jnp.linalg.svd(sigma_yx, full_matrices=False)
    return u, s, vt.T


def mode_strengths(model, data) -> jnp.ndarray:
    r"""Strength of each teacher mode in the end-to-end map: $q_k^\top W r_k$.

    $W$ is `model.end_to_end()`; $q_k, r_k$ are the teacher's singular vectors (the stored
    teacher of `gf.data.linear_teacher`, else the SVD of $\Sigma_{yx}$). Each strength rises
    from ≈ 0 to $s_k$ in one sigmoidal stage (Saxe et al.).
    """
    u, _, v = _teacher_svd(data)
    return jnp.einsum("ik,ij,jk->k", u, model.end_to_end(), v)


def effective_rank(model, data, threshold: float = 0.5) -> jnp.ndarray:
    r"""Number of teacher modes learned past `threshold` of their strength.

    Counts $k$ with $q_k^\top W r_k \ge$ `threshold` $\cdot s_k$: the rank of the end-to-end
    map at the resolution of the teacher's spectrum. It steps by one exactly at each mode's
    half-time (threshold ½), so on a staircase it is the plateau index.
    """
    _, s, _ = _teacher_svd(data)
    return jnp.sum(mode_strengths(model, data) >= threshold * s)
