"""Defaults of the flow engine: solvers by name, save grids, tolerances, work accounting."""

from __future__ import annotations

import math

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._custom_types import PyTree
from .auto import Auto
from .exprb import ExpRB
from .rkc import RKC
from .rosw import RosW

SOLVERS = {
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
    "dopri8": dfx.Dopri8,
    "bosh3": dfx.Bosh3,
    "heun": dfx.Heun,
    "euler": dfx.Euler,
    "kvaerno3": dfx.Kvaerno3,
    "kvaerno5": dfx.Kvaerno5,
    "rkc": RKC,
    "exprb": ExpRB,
    "rosw": RosW,
    "auto": Auto,
}

#: Stand-in for `t1 = inf` inside diffrax (a finite end keeps its step arithmetic finite).
T_INF = 1e300

#: atol = ATOL_FACTOR * (10th percentile of the non-zero |initial parameters|).
ATOL_FACTOR = 1e-2


def default_controller(solver, rtol, atol) -> dfx.PIDController:
    """PID controller with gains (and norm) measured for gradient flow.

    1. Explicit solvers: a PI controller (pcoeff = icoeff = 0.3) beat diffrax's default
       I-controller on every deep linear case we measured (depth 2 at init 1e-12 … 1e-3,
       depth 3 at 1e-3 and 1e-2): 5–20% fewer steps, 2–5× fewer rejected steps and 10–50×
       smaller transition-time errors at the same rtol.
    2. `Auto` (and RKC): the same gains with the max norm instead of the RMS norm. On a plateau
       the growing direction is a handful of tiny weights among many O(1) ones; the RMS norm
       lets their error be √P times the tolerance, which a long-stepping stiff method then
       accumulates (3-layer, σ = 1e-4: transition error 3e-3 with RMS, 2e-5 with max).
       `Auto` itself judges Tsit5's errors in the RMS norm until its first stiff phase
       (`Auto.explicit_rms`), and RKC's at atol/10 (`Auto.stiff_atol_factor`).
    3. Implicit solvers keep the I-controller: PERFORMANCE.md measured the PI gains 7× worse
       there at small init.
    """
    if isinstance(solver, dfx.AbstractImplicitSolver):
        return dfx.PIDController(rtol=rtol, atol=atol)
    if isinstance(solver, Auto | RKC | ExpRB | RosW):
        return dfx.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.3, norm=optx.max_norm)
    return dfx.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.3)


def with_tolerances(solver, rtol, atol):
    """Give `Auto` the default controller's tolerances (for its stiff-mode error scaling)."""
    if isinstance(solver, Auto) and solver.atol is None:
        return eqx.tree_at(lambda s: (s.rtol, s.atol), solver, (rtol, atol),
                           is_leaf=lambda x: x is None)  # fmt: skip
    return solver


#: `solver=None` (one instance: an immutable module, and `gate_linear_start` caches by it)
_DEFAULT = Auto()


def resolve_solver(solver) -> dfx.AbstractSolver:
    """`None` → `Auto()` (Tsit5, switching to RKC while stiff); a name from `SOLVERS`; or any
    diffrax solver instance."""
    if solver is None:
        return _DEFAULT
    if isinstance(solver, str):
        try:
            return SOLVERS[solver.lower()]()
        except KeyError:
            names = ", ".join(sorted(SOLVERS))
            raise ValueError(
                f"Unknown solver={solver!r}. Valid names: {names}; or pass a diffrax solver."
            ) from None
    if isinstance(solver, dfx.AbstractSolver):
        return solver
    raise TypeError(f"solver must be None, a name or a diffrax solver, got {type(solver)}.")


def gate_linear_start(solver, params):
    """`Auto` without its linear start when the concrete init is too large for it to be used
    (largest |θ| above `Auto.linear_below`): then the start is not even compiled in, which
    saves ~0.5 s of compile time (2-layer linear benchmark net, 2.7 → 3.3 s with it). Its own
    test at run time decides in the other cases, and under `jit`/`vmap` (traced parameters).
    """
    if not isinstance(solver, Auto) or not solver.linear_start:
        return solver
    leaves = [x for x in jax.tree.leaves(params) if eqx.is_inexact_array(x) and x.size]
    if not leaves or any(isinstance(x, jax.core.Tracer) for x in leaves):
        return solver
    if sum(x.size for x in leaves) > solver.linear_max:
        return solver  # off anyway (`Auto._linear_on`); and no copy of a large model to host
    if max(float(np.max(np.abs(np.asarray(x)))) for x in leaves) <= solver.linear_below:
        return solver
    # the same solver object gets the same variant: `eqx.tree_at` costs ~0.14 ms, ~2% of a
    # small solve (the cache holds its keys, so an id is never reused while cached)
    hit = _GATED.get(id(solver))
    if hit is not None and hit[0] is solver:
        return hit[1]
    out = eqx.tree_at(lambda s: s.linear_start, solver, False)
    if len(_GATED) < 64:
        _GATED[id(solver)] = (solver, out)
    return out


_GATED: dict[int, tuple] = {}


def evals_per_step(solver: dfx.AbstractSolver) -> tuple[int, int]:
    """(vector-field evaluations per step attempt, evaluations at start), or (-1, -1).

    Exact for explicit Runge–Kutta methods (FSAL reuses the last stage). Implicit methods
    evaluate a data-dependent number of times (Newton iterations, Jacobians): reported as -1.
    """
    tableau = getattr(solver, "tableau", None)
    if isinstance(solver, dfx.AbstractImplicitSolver) or tableau is None:
        return -1, -1
    if isinstance(tableau, dfx.ButcherTableau):
        if tableau.a_diagonal is not None and np.any(np.asarray(tableau.a_diagonal) != 0):
            return -1, -1
        stages = len(tableau.c) + 1
        return (stages - 1, 1) if tableau.fsal else (stages, 0)
    return -1, -1


def log_grid(t1: float, n: int = 200, t_min: float | None = None, t0: float = 0.0) -> np.ndarray:
    """Save times: `t0`, then `n - 1` log-spaced times from `t_min` to `t1`.

    Plateaus last orders of magnitude longer than the drops between them, so a log grid
    resolves both with a few hundred points. With `t1 = inf` the grid runs to 1e9 (the
    entries after the solve stops are dropped).
    """
    if n < 2:
        raise ValueError(f"save grid needs n >= 2 points, got n={n}.")
    hi = 1e9 if math.isinf(t1) else float(t1)
    if t_min is None:
        t_min = 1e-3 if math.isinf(t1) else hi * 1e-4
    lo = max(float(t_min), t0 + 1e-12 * max(1.0, abs(hi)))
    grid = np.geomspace(lo, hi, n - 1) if hi > lo else np.full(n - 1, hi)
    return np.concatenate([[t0], grid])


def resolve_save(save, t0: float, t1: float) -> np.ndarray:
    """`save=None` → `log_grid(t1)`; an int n → `log_grid(t1, n)`; else explicit times."""
    if save is None:
        return log_grid(t1, t0=t0)
    if isinstance(save, int | np.integer) and not isinstance(save, bool):
        return log_grid(t1, int(save), t0=t0)
    ts = np.asarray(save, dtype=np.float64).reshape(-1)
    if ts.size == 0:
        raise ValueError("`save` is an empty list of times; pass None, an int or times.")
    if np.any(np.diff(ts) < 0) or not np.all(np.isfinite(ts)):
        raise ValueError("`save` times must be finite and non-decreasing.")
    end = T_INF if math.isinf(t1) else t1
    if ts[0] < t0 or ts[-1] > end:
        raise ValueError(f"`save` times must lie in [t0, t1] = [{t0}, {t1}].")
    return ts


def default_atol(params: PyTree, rtol=1e-6) -> jax.Array:
    """Absolute tolerance derived from the initial state, below the init scale.

    A fixed `atol` above the init scale ε lets the controller take steps that are wrong by
    O(ε) while everything is O(ε): escapes come out late (a fixed atol = 1e-6 at ε = 1e-12
    delays the first escape by ≈ 5%, measured with the default controller; more with an
    I-controller). We use 1e-2 × the 10th percentile of the non-zero |θ_i| (≈ 1e-3·ε for a
    Gaussian init), which also respects a small perturbation planted beside large weights,
    scaled down with `rtol` below its default 1e-6 so that asking for more accuracy tightens
    both tolerances (at rtol = 1e-10: 1e-6 × the percentile).
    """
    leaves = [jnp.ravel(x) for x in jax.tree.leaves(params)]
    if not leaves:
        return jnp.asarray(1e-12)
    flat = jnp.abs(jnp.concatenate(leaves))
    flat = jnp.where(flat > 0, flat, jnp.nan)
    q = jnp.nanquantile(flat, 0.1)
    factor = ATOL_FACTOR * jnp.minimum(1.0, rtol / 1e-6)
    return jnp.where(jnp.isfinite(q), factor * q, 1e-12)
