r"""In-context linear regression (THEORY.md §6): sampled sequences and the exact population.

One sequence is the token matrix $Z = [x_1 \cdots x_N\ x_q;\ y_1 \cdots y_N\ 0]$ of shape
$(D+1)\times(N+1)$, flattened row-major into one row of `Dataset.x`; the target is
$y_q = w^\top x_q$. Tokens $x \sim N(0, \Lambda)$, one task $w \sim N(0, I_D)$ per sequence.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._misc import as_float64
from .._misc import positive_int as _positive_int
from .dataset import Dataset
from .orthogonal import orthonormalise
from .sampling import normal_arrays


def icl_eigenvalues(dim: int) -> np.ndarray:
    """The authors' default spectrum: ∝ D, …, 1, normalised to trace 1 (D = 4: 0.4 … 0.1)."""
    dim = _positive_int(dim, "dim")
    lam = np.arange(dim, 0, -1, dtype=np.float64)
    return lam / lam.sum()


def in_context_regression(
    dim: int,
    context: int,
    num_sequences: int,
    *,
    key,
    eigenvalues=None,
    rotate: bool = True,
    center: bool = True,
    whiten_tasks: bool = True,
) -> Dataset:
    r"""Sampled in-context linear regression with the conventions of THEORY.md §6.4.

    **Arguments:**

    - `dim`: $D$; `context`: $N$ context tokens; `num_sequences`: $P$ (all `≥ 1`).
    - `key`: a `jax.random` key.
    - `eigenvalues`: the $D$ eigenvalues of $\Lambda$ (positive); default `icl_eigenvalues`
        (∝ D, …, 1, trace 1).
    - `rotate`: rotate $\Lambda$ by a random orthogonal matrix (the authors' default);
        `False` keeps it diagonal (eigenvectors $e_d$, convenient for reading heads).
    - `center`: subtract from every token its mean over the $P$ sequences (per position).
    - `whiten_tasks`: transform the $P$ task vectors to empirical mean 0 and covariance
        $I$ (needs $P > D$).

    **Returns:** `Dataset(x, y)`, `x` of shape `(P, (D+1)(N+1))`, `y` of shape `(P, 1)`.
    """
    d = _positive_int(dim, "dim")
    n = _positive_int(context, "context")
    p = _positive_int(num_sequences, "num_sequences")
    lam = icl_eigenvalues(d) if eigenvalues is None else as_float64(eigenvalues, "eigenvalues")
    lam = np.asarray(lam, dtype=np.float64).reshape(-1)
    if lam.shape != (d,) or np.any(lam <= 0):
        raise ValueError(f"`eigenvalues` must be {d} positive numbers, got {lam}.")
    if whiten_tasks and p <= d:
        raise ValueError(f"`whiten_tasks` needs num_sequences > dim, got {p} ≤ {d}.")
    g_x, g_w, g_rot = normal_arrays(key, [(p, n + 1, d), (p, d), (d, d)], 1.0)
    basis = orthonormalise(g_rot) if rotate else jnp.eye(d)
    xs = (g_x * jnp.sqrt(lam)) @ basis.T
    if center:
        xs = xs - jnp.mean(xs, axis=0)
    w = g_w
    if whiten_tasks:
        w = w - jnp.mean(w, axis=0)
        cov = w.T @ w / p
        evals, evecs = jnp.linalg.eigh(cov)
        w = w @ (evecs / jnp.sqrt(evals)) @ evecs.T
    ys = jnp.einsum("pnd,pd->pn", xs, w)
    tokens = jnp.concatenate([jnp.moveaxis(xs, 2, 1), ys[:, None, :]], axis=1)
    tokens = tokens.at[:, d, n].set(0.0)
    return Dataset(jnp.reshape(tokens, (p, -1)), ys[:, n])


class InContextTask(eqx.Module):
    r"""The population of in-context regression: token covariance $\Lambda$ and context $N$.

    Pass it as the "data" of `gf.flow` with `loss=in_context_population_loss`.

    **Fields:** `cov` $(D, D)$, `context` (static $N$).
    """

    cov: jax.Array
    context: int = eqx.field(static=True)

    def __init__(self, eigenvalues, context: int, *, basis=None):
        """**Arguments:** `eigenvalues` of $\\Lambda$ (positive), `context` $N ≥ 1$, `basis`
        optional orthogonal matrix of eigenvectors (default the standard basis)."""
        lam = np.asarray(as_float64(eigenvalues, "eigenvalues")).reshape(-1)
        if np.any(lam <= 0):
            raise ValueError(f"`eigenvalues` must be positive, got {lam}.")
        o = np.eye(lam.size) if basis is None else np.asarray(basis, dtype=np.float64)
        self.cov = jnp.asarray((o * lam) @ o.T)
        self.context = _positive_int(context, "context")

    def second_moment(self) -> jax.Array:
        r"""$E[\hat\Lambda^2] = \Lambda^2 + (\Lambda + \mathrm{tr}(\Lambda) I)\Lambda/N$."""
        lam = self.cov
        eye = jnp.eye(lam.shape[0])
        return lam @ lam + (lam + jnp.trace(lam) * eye) @ lam / self.context


def in_context_population_loss(model, task: InContextTask) -> jax.Array:
    r"""Exact population loss $\tfrac12 E(y_q - \hat y_q)^2$ of a linear-attention model.

    For $\hat y_q = \beta^\top A x_q$ ($A$ = `model.merged()`),
    $E(y_q - \hat y_q)^2 = \mathrm{tr}\Lambda - 2\,\mathrm{tr}(\Lambda^2 A)
    + \mathrm{tr}(A \Lambda A^\top E[\hat\Lambda^2])$ (THEORY.md §6.3, VALIDATION V8, V9). The
    ½ makes gradient-flow time equal to $t/\tau$ of the ICL paper; plateau levels quoted there
    (no ½) are twice the values returned here.
    """
    a = model.merged()
    lam = task.cov
    full = (
        jnp.trace(lam)
        - 2 * jnp.trace(lam @ lam @ a)
        + jnp.trace(a @ lam @ a.T @ task.second_moment())
    )
    return 0.5 * full
