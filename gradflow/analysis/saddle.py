r"""Saddle refinement: from a state on a plateau to the critical point it sits near.

On a plateau the flow hovers next to a saddle $\theta^*$ of the loss (THEORY.md §1.3, §2).
`refine_saddle` solves $\nabla L(\theta) = 0$ from such a state with optimistix, then reads off
what the theory talks about: the saddle's loss, its Hessian spectrum, its **index** (number of
negative eigenvalues) and its **unstable eigenvalue** $\lambda = -\lambda_{\min}(\nabla^2 L)$.

**Linear escape.** Near $\theta^*$ the flow is $\dot\delta = -H\delta$, so the component of
$\delta = \theta - \theta^*$ in the eigenspace of $\lambda_{\min} = -\lambda$ grows like
$e^{\lambda t}$ and, once it dominates, the distance from the saddle reaches a target $D$ after

$$t_{\rm esc} \approx \frac{1}{\lambda}\,\ln\frac{D}{|\delta_u|}, \qquad
|\delta_u| = \|P_u(\theta_0 - \theta^*)\|,$$

$P_u$ the orthogonal projector on that eigenspace (all of it: at symmetric saddles the most
negative eigenvalue is degenerate). The formula is exact for the linearised flow started on the
unstable eigenspace, and its error is $O(D^2)$ relative while $D$ is small enough for the
quadratic model of $L$; for $D = O(1)$ (e.g. "the next mode reaches half strength") the
nonlinear saturation adds an $O(1/\lambda)$ delay that this formula does not contain.
At zero-unit (Type III) saddles the Hessian vanishes and the escape is a power law, not
exponential (THEORY.md §1.6, `gf.theory.type3_blowup_time`): there $\lambda = 0$ and the
predicted time is `inf`.

**Root finding.** Saddles of networks are rarely isolated (rescaling symmetries make whole
manifolds of critical points, so the Hessian is singular). Gauss–Newton on the residual
$r(\theta) = \nabla L(\theta)$ with a least-squares (SVD) linear solve takes minimum-norm steps
$-H^{+}\nabla L$: it converges quadratically to the nearest point of the critical manifold and
never wanders along it. Above 300 parameters the linear solve is matrix-free (CG on the
normal equations, `lineax.Normal(lineax.CG(...))`, from Hessian-vector products), and above
`dense_max` the spectrum comes from Lanczos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx

from ..losses import mse

_HESSIAN = ("auto", "dense", "lanczos")
_SVD_MAX = 300  # largest state solved with dense SVD steps (see `refine_saddle`)


@dataclass
class Saddle:
    r"""A critical point found by [`refine_saddle`][], with its spectrum and escape prediction.

    **Fields:**

    - `params`: the refined point, same structure as the input (a model if a model was given).
    - `loss`, `grad_norm`: $L(\theta^*)$ and $\|\nabla L(\theta^*)\|_2$.
    - `converged`: whether the root finder met its tolerances (else it stopped at `max_steps`;
        judge by `grad_norm`). `num_steps`: root-finder steps taken.
    - `eigenvalues`: ascending Hessian eigenvalues — all of them (`method="dense"`) or the
        Lanczos Ritz values (`method="lanczos"`, extremal eigenvalues, each distinct value once).
    - `method`: `"dense"` or `"lanczos"`.
    - `index`: number of eigenvalues below `-eig_tol`. From Lanczos it counts distinct negative
        Ritz values: a lower bound when negative eigenvalues are repeated.
    - `unstable_eigenvalue`: $\lambda = -\lambda_{\min}$ if $\lambda_{\min} < -$`eig_tol`, else 0
        (a minimum or a flat direction: no linear escape).
    - `unstable_direction`: a unit eigenvector of $\lambda_{\min}$, same structure as `params`.
    - `distance`: $\|\theta_0 - \theta^*\|$ from the starting state; `unstable_distance`:
        $|\delta_u|$, its component in the $\lambda_{\min}$ eigenspace.
    - `target`: the escape distance $D$ (or `None`); `predicted_escape`:
        $\ln(D/|\delta_u|)/\lambda$ (`inf` without an unstable direction).
    - `unstable_basis`: orthonormal columns (flat parameter space, shape `(n, r)`) spanning the
        part of the $\lambda_{\min}$ eigenspace used for $|\delta_u|$ (dense: the whole
        eigenspace; Lanczos: the direction of $P_u(\theta_0 - \theta^*)$).
    - `measured_escape`: from `solution`, time from `t_start` until the flow's component in
        that eigenspace, $\|P_u(\theta(t) - \theta^*)\|$, first reaches $D$ (`nan` if it never
        does or no solution was given); `measured_by`: `"unstable"` (from the solution's
        trajectory; `"distance"` measures $\|\theta(t) - \theta^*\|$ instead, see
        [`measured_escape_time`][]) or `"loss"` (no trajectory saved: first time
        $L^* - L(t) \ge \tfrac12\lambda D^2$, the quadratic-model equivalent, meaningful when
        the start lies mostly along the unstable direction).
    """

    params: Any
    loss: float
    grad_norm: float
    converged: bool
    num_steps: int
    eigenvalues: np.ndarray
    method: str
    index: int
    eig_tol: float
    unstable_eigenvalue: float
    unstable_direction: Any
    unstable_basis: np.ndarray
    distance: float
    unstable_distance: float
    target: float | None = None
    predicted_escape: float = np.nan
    measured_escape: float = np.nan
    measured_by: str | None = None

    @property
    def num_params(self) -> int:
        leaves = jax.tree.leaves(eqx.filter(self.params, eqx.is_inexact_array))
        return int(sum(np.size(x) for x in leaves))

    def __repr__(self) -> str:
        ev = self.eigenvalues
        shown = " ".join(f"{v:.4g}" for v in ev) if ev.size <= 12 else (
            " ".join(f"{v:.4g}" for v in ev[:6]) + " … " + " ".join(f"{v:.4g}" for v in ev[-3:])
        )  # fmt: skip
        lines = [
            f"Saddle(loss={self.loss:.10g}, |grad|={self.grad_norm:.3g}, index={self.index}, "
            f"unstable eigenvalue λ={self.unstable_eigenvalue:.6g}, "
            f"{'converged' if self.converged else 'NOT converged'} in {self.num_steps} steps)",
            f"  {self.method} Hessian of {self.num_params} params, eigenvalues: {shown}",
            f"  start → saddle distance {self.distance:.4g}, along the unstable direction "
            f"{self.unstable_distance:.4g}",
        ]
        if self.target is not None:
            line = f"  escape to distance {self.target:.4g}: predicted {self.predicted_escape:.6g}"
            if self.measured_by is not None:
                m, p = self.measured_escape, self.predicted_escape
                ok = np.isfinite(m) and np.isfinite(p) and m != 0
                rel = f" (rel. {(p - m) / m:+.2e})" if ok else ""
                line += f", measured {m:.6g} (by {self.measured_by}){rel}"
            lines.append(line)
        return "\n".join(lines)


def refine_saddle(
    model,
    data=None,
    *,
    loss: Callable = mse,
    hessian: str = "auto",
    dense_max: int = 500,
    num_eigenvalues: int = 40,
    rtol: float = 1e-13,
    atol: float = 1e-14,
    max_steps: int = 100,
    eig_tol: float | None = None,
    degenerate_rtol: float = 1e-6,
    target: float | None = None,
    solution=None,
    t_start: float = 0.0,
    key=None,
) -> Saddle:
    r"""Refine a plateau state to the nearby critical point and predict the escape from it.

    **Arguments:**

    - `model`: the starting state: a model, or any pytree of parameters. Its inexact arrays are
        the unknowns (`eqx.partition(model, eqx.is_inexact_array)`), everything else is fixed.
    - `data`: passed to the loss (any pytree, e.g. a `gf.Dataset`).
    - `loss`: `loss(model, data) -> scalar` (default half mean squared error).
    - `hessian`: `"dense"` (`jax.hessian` + `eigh`: all eigenvalues, exact index),
        `"lanczos"` (`num_eigenvalues` Lanczos steps on Hessian-vector products, fully
        reorthogonalised), or `"auto"`: dense up to `dense_max` parameters. (The root finder
        solves its linear systems by dense SVD up to 300 parameters and by matrix-free CG on
        the normal equations above.)
    - `dense_max`: largest parameter count for `"auto"` to go dense (one $n \times n$
        Hessian and its `eigh`).
    - `num_eigenvalues`: Lanczos steps, i.e. the number of Ritz values (capped at $n$).
    - `rtol`, `atol`, `max_steps`: Gauss–Newton tolerances on the change of $\theta$ and of
        $\nabla L$ between steps, and its step limit.
    - `eig_tol`: eigenvalues below `-eig_tol` count as negative (default
        $\max(10^{-8}\max_i|\lambda_i|,\ 10^{-10})$: the floor keeps rounding noise of a
        vanishing Hessian from counting, e.g. at the origin of a quadratic net).
    - `degenerate_rtol`: eigenvalues within this relative distance of $\lambda_{\min}$ form the
        unstable eigenspace used for $|\delta_u|$.
    - `target`: escape distance $D$ for the predicted (and measured) escape time.
    - `solution`: a `FlowSolution` (or GD run) from the same kind of model, whose time axis
        contains the starting state at `t_start`; its trajectory (`save_params=True`) gives the
        measured escape along the unstable eigenspace, else its loss does (see [`Saddle`][],
        [`measured_escape_time`][]). Needs `target`.
    - `t_start`: time of the starting state on `solution`'s axis (default 0: the solution was
        started from `model`).
    - `key`: start vector of the random Lanczos run (default a fixed key).

    **Returns:** a [`Saddle`][]; `print` it for a summary.

    **Example:**

    ```python
    saddle = gf.analysis.refine_saddle(sol_mid_plateau_model, data, target=1e-2)
    print(saddle.index, saddle.unstable_eigenvalue, saddle.predicted_escape)
    ```
    """
    if hessian not in _HESSIAN:
        raise ValueError(f"`hessian` must be one of {_HESSIAN}, got {hessian!r}.")
    if target is not None and not (np.isfinite(target) and target > 0):
        raise ValueError(f"`target` (escape distance) must be positive and finite, got {target}.")
    if solution is not None and target is None:
        raise ValueError("A measured escape needs `target=` (the escape distance) as well.")
    if not callable(loss):
        raise TypeError(f"`loss` must be a function loss(model, data), got {type(loss)}.")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat_loss = _FlatLoss.of(loss, params, static)
    unravel = flat_loss.unravel
    flat0 = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(params)]).astype(jnp.float64)
    n = int(flat0.size)
    method = hessian if hessian != "auto" else ("dense" if n <= dense_max else "lanczos")
    k = int(min(num_eigenvalues, n))
    if k < 1:
        raise ValueError(f"`num_eigenvalues` must be ≥ 1, got {num_eigenvalues}.")
    key = jax.random.key(0) if key is None else key
    # the root finder's linear solve: a dense SVD per Gauss–Newton step costs O(n³) (≈ 2 s at
    # n = 1000, measured), so larger states use matrix-free CG whatever `hessian` says
    solve = "svd" if n <= _SVD_MAX else "cg"
    out = _refine(
        flat0, data, key, flat_loss=flat_loss, method=method, solve=solve, k=k,
        rtol=float(rtol), atol=float(atol), max_steps=int(max_steps),
    )  # fmt: skip
    out = jax.tree.map(np.asarray, out)
    theta, value, gnorm = out["theta"], float(out["loss"]), float(out["grad_norm"])
    disp = np.asarray(flat0, float) - theta

    if method == "dense":
        evals, evecs = out["evals"], out["evecs"]
        scale = float(np.max(np.abs(evals)))
        tol = max(1e-8 * scale, 1e-10) if eig_tol is None else float(eig_tol)
        lam_min = float(evals[0])
        block = evecs[:, evals <= lam_min + degenerate_rtol * max(abs(lam_min), 1e-300)]
        direction = evecs[:, 0]
        du = float(np.linalg.norm(block.T @ disp))
        basis = block
    else:
        evals, vecs = _ritz(out["Q"], out["alpha"], out["beta"])
        scale = float(np.max(np.abs(evals)))
        tol = max(1e-8 * scale, 1e-10) if eig_tol is None else float(eig_tol)
        lam_min = float(evals[0])
        direction = vecs[:, 0]
        basis = direction[:, None]
        # Lanczos started FROM the displacement: its Krylov space holds exactly P_λ(disp) for
        # each eigenspace, so the Ritz vectors at λ_min give |δ_u| even when λ_min is repeated.
        du = 0.0
        if np.linalg.norm(disp) > 0:
            dv, dvecs = _ritz(out["Qd"], out["alphad"], out["betad"])
            width = degenerate_rtol * max(abs(lam_min), 1e-300) + 1e-12 * scale
            sel = np.abs(dv - lam_min) <= width
            du = float(np.linalg.norm(dvecs[:, sel].T @ disp))
            if du > 0:
                proj = dvecs[:, sel] @ (dvecs[:, sel].T @ disp)
                basis = (proj / np.linalg.norm(proj))[:, None]
    index = int(np.sum(evals < -tol))
    lam = -lam_min if lam_min < -tol else 0.0
    saddle = Saddle(
        params=eqx.combine(unravel(jnp.asarray(theta)), static),
        loss=value, grad_norm=gnorm, converged=bool(out["converged"]),
        num_steps=int(out["num_steps"]), eigenvalues=np.asarray(evals), method=method,
        index=index, eig_tol=tol, unstable_eigenvalue=lam,
        unstable_direction=eqx.combine(unravel(jnp.asarray(direction)), static),
        unstable_basis=np.asarray(basis),
        distance=float(np.linalg.norm(disp)), unstable_distance=du, target=target,
    )  # fmt: skip
    if target is not None:
        saddle.predicted_escape = predicted_escape_time(lam, du, target)
    if solution is not None:
        saddle.measured_escape, saddle.measured_by = measured_escape_time(
            solution, saddle, target, t_start=t_start
        )
    return saddle


def predicted_escape_time(unstable_eigenvalue: float, unstable_distance: float, target: float):
    r"""Linear escape time $\ln(D/|\delta_u|)/\lambda$ (`inf` if $\lambda \le 0$ or
    $\delta_u = 0$; negative if the start is already farther than $D$)."""
    if unstable_eigenvalue <= 0 or unstable_distance <= 0:
        return float("inf")
    return float(np.log(target / unstable_distance) / unstable_eigenvalue)


def measured_escape_time(
    solution, saddle: Saddle, target: float, *, t_start: float = 0.0, by: str = "unstable"
):
    r"""First time after `t_start` at which `solution` has escaped `target` from `saddle`.

    With a saved trajectory, `by="unstable"` (default) measures the component along the
    saddle's unstable eigenspace, $\|P_u(\theta(t) - \theta^*)\| = D$ — what the linear
    prediction is about — and `by="distance"` the whole distance $\|\theta(t) - \theta^*\|$
    (which also counts stable components and any offset along a manifold of saddles). Without
    a trajectory it is the loss gap $L^* - L(t) = \tfrac12\lambda D^2$ of the quadratic model
    along the unstable direction. Between saves the logarithm of the measured quantity is
    interpolated linearly in $t$, which is exact for the exponential growth of the escape.

    **Returns:** `(time − t_start, "unstable" | "distance" | "loss")`; the time is `nan` if
    never reached.
    """
    if by not in ("unstable", "distance"):
        raise ValueError(f"`by` must be 'unstable' or 'distance', got {by!r}.")
    t = np.asarray(solution.t, float)
    traj = getattr(solution, "trajectory", None)
    if traj is not None:
        star = jax.tree.leaves(eqx.filter(saddle.params, eqx.is_inexact_array))
        path = jax.tree.leaves(eqx.filter(traj, eqx.is_inexact_array))
        if len(star) != len(path) or any(
            np.shape(p)[1:] != np.shape(s) for p, s in zip(path, star)
        ):
            raise ValueError(
                "`solution.trajectory` does not have the structure of the refined model; pass "
                "the solution of a flow from the same kind of model, run with save_params=True."
            )
        rows = [
            np.reshape(np.asarray(p) - np.asarray(s)[None], (len(t), -1))
            for p, s in zip(path, star)
        ]
        disp = np.concatenate(rows, axis=1)  # flat in the order of the refined parameters
        if by == "distance":
            size = np.linalg.norm(disp, axis=1)
        else:
            size = np.linalg.norm(disp @ saddle.unstable_basis, axis=1)
        return _first_rise(t, size, target, t_start), by
    lam = saddle.unstable_eigenvalue
    if lam <= 0:
        return float("nan"), "loss"
    gap = saddle.loss - np.asarray(solution.loss, float)
    return _first_rise(t, gap, 0.5 * lam * target**2, t_start), "loss"


def _first_rise(t, y, level, t_start):
    ok = np.isfinite(t) & np.isfinite(y) & (t >= t_start)
    t, y = t[ok], y[ok]
    above = np.flatnonzero(y >= level)
    if above.size == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(t[0] - t_start)
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    if y0 > 0:  # exponential growth: interpolate ln y linearly
        frac = np.log(level / y0) / np.log(y1 / y0)
    else:
        frac = (level - y0) / (y1 - y0)
    return float(t0 + frac * (t1 - t0) - t_start)


class _FlatLoss(eqx.Module):
    """`loss(model, data)` as a function of the flat parameter vector.

    Holds the tree structure and shapes (hashable), not a `ravel_pytree` closure, so that
    repeated calls on models of one shape hit `_refine`'s compilation cache.
    """

    loss: Callable = eqx.field(static=True)
    treedef: Any = eqx.field(static=True)
    shapes: tuple = eqx.field(static=True)
    static: Any

    @classmethod
    def of(cls, loss, params, static):
        leaves, treedef = jax.tree.flatten(params)
        if not leaves:
            raise ValueError(
                "`model` (the starting state) has no float arrays to refine; pass float arrays, "
                "e.g. jnp.asarray(x, dtype=float)."
            )
        return cls(loss, treedef, tuple(tuple(np.shape(x)) for x in leaves), static)

    def unravel(self, flat):
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = jnp.split(flat, np.cumsum(sizes)[:-1])
        leaves = [p.reshape(s) for p, s in zip(parts, self.shapes)]
        return jax.tree.unflatten(self.treedef, leaves)

    def __call__(self, flat, data):
        return self.loss(eqx.combine(self.unravel(flat), self.static), data)


@eqx.filter_jit
def _refine(flat0, data, key, *, flat_loss, method, solve, k, rtol, atol, max_steps):
    grad = jax.grad(flat_loss)
    if solve == "svd":
        linear_solver = lx.SVD()
    else:
        linear_solver = lx.Normal(lx.CG(rtol=1e-10, atol=1e-14, max_steps=10 * flat0.size))
    solver = optx.GaussNewton(rtol=rtol, atol=atol, linear_solver=linear_solver)
    sol = optx.least_squares(
        lambda y, d: grad(y, d), solver, flat0, data, max_steps=max_steps, throw=False
    )
    theta = sol.value
    out = dict(
        theta=theta,
        loss=flat_loss(theta, data),
        grad_norm=jnp.linalg.norm(grad(theta, data)),
        converged=sol.result == optx.RESULTS.successful,
        num_steps=sol.stats["num_steps"],
    )
    if method == "dense":
        h = jax.hessian(flat_loss)(theta, data)
        evals, evecs = jnp.linalg.eigh(0.5 * (h + h.T))
        out.update(evals=evals, evecs=evecs)
    else:
        hvp = lambda v: jax.jvp(lambda p: grad(p, data), (theta,), (v,))[1]  # noqa: E731
        v0 = jax.random.normal(key, flat0.shape, flat0.dtype)
        out.update(zip(("Q", "alpha", "beta"), lanczos(hvp, v0, k)))
        disp = flat0 - theta
        start = jnp.where(jnp.linalg.norm(disp) > 0, disp, v0)
        out.update(zip(("Qd", "alphad", "betad"), lanczos(hvp, start, k)))
    return out


def lanczos(matvec: Callable, v0: jax.Array, k: int):
    r"""`k` steps of Lanczos with full reorthogonalisation (jittable).

    **Returns:** `(Q, alpha, beta)`: the Lanczos basis (rows, shape `(k, n)`), the diagonal and
    the off-diagonal of the tridiagonal $T = Q H Q^\top$. An exhausted Krylov space shows as
    `beta[j] ≈ 0`; [`_ritz`][] truncates there.
    """
    n = v0.shape[0]
    q0 = v0 / jnp.linalg.norm(v0)
    basis = jnp.zeros((k + 1, n), v0.dtype).at[0].set(q0)

    def body(j, carry):
        basis, alpha, beta = carry
        q = basis[j]
        w = matvec(q)
        a = jnp.vdot(q, w)
        for _ in range(2):  # rows after j are still zero; twice is enough (Kahan–Parlett)
            w = w - (basis @ w) @ basis
        b = jnp.linalg.norm(w)
        basis = basis.at[j + 1].set(jnp.where(b > 0, w / jnp.where(b > 0, b, 1.0), 0.0))
        return basis, alpha.at[j].set(a), beta.at[j].set(b)

    zeros = jnp.zeros(k, v0.dtype)
    basis, alpha, beta = jax.lax.fori_loop(0, k, body, (basis, zeros, zeros))
    return basis[:k], alpha, beta


def _ritz(basis, alpha, beta):
    """Ritz values (ascending) and vectors (columns) of a Lanczos run, truncated at breakdown."""
    scale = max(float(np.max(np.abs(alpha))), float(np.max(np.abs(beta))), 1e-300)
    m = alpha.size
    small = np.flatnonzero(beta[: m - 1] <= 1e-10 * scale)
    if small.size:
        m = int(small[0]) + 1
    tri = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    vals, y = np.linalg.eigh(tri)
    return vals, basis[:m].T @ y
