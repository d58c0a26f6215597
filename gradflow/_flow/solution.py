"""`FlowSolution`: what a solve returns, and its status codes (failure is data)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import numpy as np

# Status codes. Kept as integers inside jit/vmap (so one failing sweep member is just a value),
# turned into strings at the Python surface.
STATUS_NAMES = ("success", "stopped", "max_steps", "diverged", "not_stopped", "failed")
SUCCESS, STOPPED, MAX_STEPS, DIVERGED, NOT_STOPPED, FAILED = range(len(STATUS_NAMES))

STATUS_HELP = {
    "success": "reached t1",
    "stopped": "stop_when crossed zero; t_final is the located crossing",
    "max_steps": "ran out of steps (raise max_steps); the record up to t_final is kept",
    "diverged": "parameters or loss became non-finite or exploded at t_final",
    "not_stopped": "t1=inf but stop_when never changed sign before the flow settled",
    "failed": "the solver failed (e.g. an implicit step's nonlinear solve); see message",
}


def status_name(code) -> Any:
    """Map a status code (scalar or array) to its name (str or numpy array of str)."""
    code = np.asarray(code)
    names = np.asarray(STATUS_NAMES)[code]
    return str(names) if names.ndim == 0 else names


class FlowSolution(eqx.Module):
    """The result of `gf.flow` / `gf.solve_flow` (and, with the same fields, `gf.gd`).

    **Fields:**

    - `t`: save times (1-D; log-spaced by default). After the solve ended, unreached save
      times are dropped (concrete calls) or hold `nan` (calls under `jax.vmap`/`jit`).
    - `loss`: the loss at `t`.
    - `metrics`: dict of user summaries at `t` (each `(len(t), ...)`).
    - `params`: the final parameter pytree (`gf.solve_flow`).
    - `model`: the final model (`gf.flow`, `gf.gd`), else `None`.
    - `t_final`: when the solve ended (t1, the stop crossing, the divergence time, ...).
    - `status_code`: integer code; `status` gives its name ("success", "stopped",
      "max_steps", "diverged", "not_stopped", "failed").
    - `stats`: dict with at least `num_steps`, `num_rejected`, `num_grad_evals`; also
      `num_accepted` and `num_hvp_evals` (Hessian-vector products) from `gf.flow`, and the
      solver's own counts: under `auto` `num_switches`, `num_stiff_steps`,
      `num_linear_steps` (its linear start), `num_sliding_steps` and the stiff method's
      (`num_hessians` of ExpRB and RosW; RKC's `num_redo`, `num_stages_max`).
    - `trajectory`: parameters at `t` if `save_params=True` was asked, else `None`.
    - `crossings`: if `crossings=` was asked, the time of the first crossing of each level
      (`nan` if not crossed before `t_final`), shape `(levels,)`; else `None`.
    - `crossing_levels`: the levels of `crossings` (a tuple), else `None`.
    """

    t: jax.Array
    loss: jax.Array
    metrics: dict
    params: Any
    model: Any
    t_final: jax.Array
    status_code: jax.Array
    stats: dict
    trajectory: Any = None
    crossings: Any = None
    crossing_levels: tuple | None = eqx.field(static=True, default=None)

    @property
    def status(self):
        return status_name(self.status_code)

    @property
    def final_loss(self):
        return self.loss[..., -1]

    def trimmed(self) -> FlowSolution:
        """Drop save times the solve did not reach (only for a single, concrete solution)."""
        t = np.asarray(self.t)
        if t.ndim != 1:
            return self
        keep = np.isfinite(t)
        # the final state is appended after the grid; drop it if it repeats the last save
        prev = np.flatnonzero(keep[:-1])
        if keep[-1] and prev.size and t[prev[-1]] == t[-1]:
            keep[prev[-1]] = False
        if keep.all():
            return self
        idx = np.flatnonzero(keep)
        # numpy indexing: an eager jax gather costs ~1 ms per array, more than a small solve
        take = lambda x: None if x is None else np.asarray(x)[idx]
        metrics = {k: take(v) for k, v in self.metrics.items()}
        traj = None if self.trajectory is None else jax.tree.map(take, self.trajectory)
        return eqx.tree_at(
            lambda s: (s.t, s.loss, s.metrics, s.trajectory),
            self,
            (take(self.t), take(self.loss), metrics, traj),
            is_leaf=lambda x: x is None,
        )

    def __repr__(self):
        try:
            n = int(np.size(self.t))
            return (
                f"FlowSolution(status={self.status!r}, t_final={float(self.t_final):.6g}, "
                f"final_loss={float(self.loss[-1]):.6g}, saves={n}, "
                f"steps={int(self.stats['num_steps'])})"
            )
        except Exception:  # batched or traced
            return super().__repr__()
