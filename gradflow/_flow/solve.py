"""`gf.solve_flow` (any loss over any pytree) and `gf.flow` (a model and a dataset)."""

from __future__ import annotations

import math
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx

from .._custom_types import PyTree
from ..losses import mse
from . import progress as _progress
from .field import AbstractField, GradientFlow
from .options import (
    T_INF,
    default_atol,
    default_controller,
    evals_per_step,
    resolve_save,
    resolve_solver,
    with_tolerances,
)
from .solution import (
    DIVERGED,
    FAILED,
    MAX_STEPS,
    NOT_STOPPED,
    STATUS_HELP,
    STOPPED,
    SUCCESS,
    FlowSolution,
)

#: Parameters whose squared norm exceeds this count as diverged (as do non-finite ones).
DIVERGENCE_NORM2 = 1e200

#: With t1 = inf and stop_when, the flow counts as settled (status "not_stopped") when
#: rms(dθ/dt) < this × atol.
SETTLE_FACTOR = 1.0


class _ParamsOnly(eqx.Module):
    """Adapts a user function of `params` to the internal signature `(params, args)`."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, params, args):
        return self.fn(params)


class _OnModel(eqx.Module):
    """Adapts `fn(model, data)` to `(params, (static, data))` for `gf.flow`."""

    fn: Callable = eqx.field(static=True)
    with_data: bool = eqx.field(static=True, default=True)

    def __call__(self, params, args):
        static, data = args
        model = eqx.combine(params, static)
        return self.fn(model, data) if self.with_data else self.fn(model)


def _rms(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    sq = sum(jnp.sum(jnp.square(x)) for x in leaves)
    return jnp.sqrt(sq / max(sum(x.size for x in leaves), 1))


def _diverged(params) -> jax.Array:
    sq = sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))
    return ~jnp.isfinite(sq) | (sq > DIVERGENCE_NORM2)


@eqx.filter_jit
def _solve(
    loss_fn,
    params,
    args,
    t0,
    t1,
    ts,
    *,
    infinite,
    field,
    solver,
    rtol,
    atol,
    controller,
    metrics,
    stop_when,
    max_steps,
    progress,
    save_params,
    dt0,
):
    if atol is None:
        atol = default_atol(params, rtol)
    if controller is None:
        controller = default_controller(solver, rtol, atol)
        solver = with_tolerances(solver, rtol, atol)
    # The guard checks every accepted step for divergence (and step-size collapse) at the
    # cost of one norm, instead of a diffrax event (whose machinery costs ~10% of a small
    # solve). A fixed-step controller cannot be wrapped: there divergence is an event.
    guarded = isinstance(controller, dfx.AbstractAdaptiveStepSizeController)
    if guarded:
        controller = _progress.GuardController(controller, loss_fn, progress, _diverged)

    term = dfx.ODETerm(lambda t, y, a: field(loss_fn, t, y, a))

    def summary(t, y, a):
        # summaries are stored as floats so that unreached saves can hold nan
        values = {k: jnp.asarray(f(y, a), dtype=float) for k, f in metrics.items()}
        out = {"loss": loss_fn(y, a), "metrics": values}
        if save_params:
            out["params"] = y
        return out

    counted = hasattr(solver, "work")  # solvers that count their own work in their state
    saveat = dfx.SaveAt(
        subs=[dfx.SubSaveAt(ts=ts, fn=summary), dfx.SubSaveAt(t1=True)], solver_state=counted
    )
    conds = {}
    if not guarded:
        conds["diverged"] = lambda t, y, args, **kw: _diverged(y)
    if stop_when is not None:
        conds["stop"] = lambda t, y, args, **kw: stop_when(y, args)
        if infinite:
            # With t1 = inf, a stop condition that never changes sign must not spin until
            # max_steps: once the flow has settled on a fixed point (rms |dθ/dt| below
            # atol, the noise floor of an explicit solver in a stiff converged tail) it will
            # not cross, so end with status "not_stopped".
            # Costs one extra field evaluation per step, in this mode only.
            settle = SETTLE_FACTOR * atol
            conds["settled"] = lambda t, y, args, **kw: _rms(field(loss_fn, t, y, args)) < settle
    # Root finding only for a real-valued stop condition (the others are boolean). Without it
    # the solve also traces inside `jax.shard_map` (optimistix's Newton does not, there).
    finder = optx.Newton(rtol=1e-12, atol=1e-14) if stop_when is not None else None
    names = list(conds)
    event = dfx.Event(cond_fn=list(conds.values()), root_finder=finder) if conds else None
    sol = dfx.diffeqsolve(
        term,
        solver,
        t0,
        t1,
        dt0,
        params,
        args,
        saveat=saveat,
        stepsize_controller=controller,
        event=event,
        max_steps=max_steps,
        throw=False,
    )
    grid_ts, final_ts = sol.ts
    grid, final = sol.ys
    final = jax.tree.map(lambda x: x[0], final)
    t_final = final_ts[0]

    res = sol.result
    fired = lambda name: sol.event_mask[names.index(name)] if name in names else False
    div_fired, settled = fired("diverged"), fired("settled")
    code = jnp.where(
        res == dfx.RESULTS.successful,
        NOT_STOPPED if infinite else SUCCESS,
        jnp.where(
            res == dfx.RESULTS.event_occurred,
            jnp.where(div_fired, DIVERGED, jnp.where(settled, NOT_STOPPED, STOPPED)),
            jnp.where(
                res == dfx.RESULTS.max_steps_reached,
                MAX_STEPS,
                jnp.where(res == dfx.RESULTS.dt_min_reached, DIVERGED, FAILED),
            ),
        ),
    )
    # The record is the save grid up to t_final, then the final state itself (so `loss[-1]`
    # is the loss where the solve ended, also when a stop or divergence cut it short).
    reached = jnp.isfinite(grid_ts) & (grid_ts <= t_final)
    last = summary(t_final, final, args)

    def record(x, x_final):
        mask = jnp.reshape(reached, (-1,) + (1,) * (x.ndim - 1))
        return jnp.concatenate([jnp.where(mask, x, jnp.nan), x_final[None]])

    rec = jax.tree.map(record, grid, last)
    n_steps = sol.stats["num_steps"]
    n_acc = sol.stats["num_accepted_steps"]
    n_rej = sol.stats["num_rejected_steps"]
    if counted:
        # The solver counts accepted steps only (diffrax drops the state of a rejected step);
        # rejected steps are charged at the mean cost of an accepted one: an estimate.
        work = solver.work(sol.solver_state)
        per_acc = lambda n: n + jnp.round(n * n_rej / jnp.maximum(n_acc, 1)).astype(n.dtype)
        evals = per_acc(work["num_vf"].astype(jnp.int64))
        jvps = per_acc(work["num_jvp"].astype(jnp.int64))
        extra = {k: v for k, v in work.items() if k not in ("num_vf", "num_jvp")}
    else:
        per_step, at_start = evals_per_step(solver)
        evals = jnp.where(per_step >= 0, per_step * n_steps + at_start, -1)
        jvps, extra = jnp.zeros_like(evals), {}
    stats = {
        "num_steps": n_steps,
        "num_accepted": n_acc,
        "num_rejected": n_rej,
        "num_grad_evals": evals * field.grads_per_call,
        # JVPs of the field (power iterations) are Hessian-vector products of the loss
        "num_hvp_evals": evals * field.hvps_per_call + jvps,
        **extra,
    }
    return FlowSolution(
        t=record(grid_ts, t_final),
        loss=rec["loss"],
        metrics=rec["metrics"],
        params=final,
        model=None,
        t_final=t_final,
        status_code=code.astype(jnp.int32),
        stats=stats,
        trajectory=rec["params"] if save_params else None,
    )


def _check_common(t1, rtol, atol, max_steps, stop_when, field):
    try:
        t1f = float(t1)
    except (TypeError, ValueError):
        raise TypeError(f"t1 must be a number (or inf with stop_when), got {t1!r}.") from None
    if math.isnan(t1f) or t1f <= 0:
        raise ValueError(f"t1 must be > 0 (got {t1}); pass e.g. t1=100.0 or t1=float('inf').")
    if math.isinf(t1f) and stop_when is None:
        raise ValueError(
            "t1=inf needs a stop condition: pass stop_when=... (e.g. lambda m: loss(m) - 1e-3)."
        )
    if not (rtol > 0):
        raise ValueError(f"rtol must be > 0, got {rtol}.")
    if atol is not None and not (atol > 0):
        raise ValueError(f"atol must be > 0 (or None to derive it from the init), got {atol}.")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}.")
    if not isinstance(field, AbstractField):
        raise TypeError(
            f"field must be a gradflow field such as gf.GradientFlow(), got {type(field)}."
        )
    return t1f


def solve_flow(
    loss_fn: Callable,
    params: PyTree,
    args=None,
    *,
    t1: float,
    t0: float = 0.0,
    field: AbstractField = GradientFlow(),
    solver=None,
    rtol: float = 1e-6,
    atol: float | None = None,
    controller: dfx.AbstractStepSizeController | None = None,
    save=None,
    metrics: dict[str, Callable] | None = None,
    stop_when: Callable | None = None,
    max_steps: int = 1_000_000,
    progress: bool | None = None,
    save_params: bool = False,
    dt0: float | None = None,
    throw: bool = False,
) -> FlowSolution:
    r"""Integrate the gradient flow $\dot\theta = -\nabla_\theta L(\theta)$ of any loss.

    **Arguments:**

    - `loss_fn`: `loss_fn(params, args) -> scalar`, differentiable in `params`.
    - `params`: the initial parameters, any pytree of float arrays (float64 recommended).
    - `args`: passed through to `loss_fn`, `metrics` and the field (e.g. the data).
    - `t1`: final time; may be `inf` together with `stop_when`.
    - `t0`: initial time (default 0).
    - `field`: the vector field, `gf.GradientFlow()` (default) or `gf.ModifiedFlow(lr)` or
      your own `gf.AbstractField`.
    - `solver`: `None` (`"auto"`: Tsit5, switching to RKC while the flow is stiff), a name
      (`"tsit5"`, `"rkc"`, `"dopri8"`, `"kvaerno5"`, ...), or a
      diffrax solver.
    - `rtol`, `atol`: tolerances of the PID controller. `atol=None` derives it from the initial
      state (1e-2 × the 10th percentile of the non-zero |θ|): it must sit below the init scale.
    - `controller`: a diffrax step-size controller, overriding `rtol`/`atol`.
    - `save`: `None` (200 log-spaced times and t0), an int (that many), or explicit times.
    - `metrics`: `{name: fn(params, args)}` summaries computed at the save times.
    - `stop_when`: `fn(params) -> scalar`; the solve stops at its first sign change, located by
      root finding on the dense output (status `"stopped"`, time `t_final`).
    - `max_steps`: step budget; when exhausted the status is `"max_steps"` and the record up to
      that point is kept.
    - `progress`: live line on stderr (`None`: only when stderr is a terminal).
    - `save_params`: also save the whole parameter pytree at every save time.
    - `dt0`: first step (default: chosen automatically).
    - `throw`: raise `RuntimeError` when the status is not `"success"`/`"stopped"` (default:
      never raise; failure is data, so `jax.vmap` over a sweep never loses members).

    **Returns:**

    A [`gradflow.FlowSolution`][] with `t`, `loss`, `metrics`, `params`, `t_final`, `status`,
    `stats`.
    """
    t1f = _check_common(t1, rtol, atol, max_steps, stop_when, field)
    if stop_when is not None and not isinstance(stop_when, eqx.Module):
        stop_when = _ParamsOnly(stop_when)
    return _run(
        loss_fn, params, args, t0=t0, t1=t1f, field=field, solver=solver, rtol=rtol,
        atol=atol, controller=controller, save=save, metrics=metrics or {},
        stop_when=stop_when, max_steps=max_steps, progress=progress, save_params=save_params,
        dt0=dt0, throw=throw, label="flow",
    )  # fmt: skip


def _run(loss_fn, params, args, *, t0, t1, save, progress, throw, label, solver, **kw):
    infinite = math.isinf(t1)
    ts = resolve_save(save, t0, t1)
    show = _progress.use_progress(progress, params, args)
    if show:
        _progress.open_line(label)
    try:
        sol = _solve(
            loss_fn, params, args, jnp.asarray(t0, float), jnp.asarray(T_INF if infinite else t1),
            jnp.asarray(ts), infinite=infinite, solver=resolve_solver(solver), progress=show, **kw,
        )  # fmt: skip
    finally:
        if show:
            _progress.close_line()
    if not isinstance(sol.t, jax.core.Tracer):
        sol = sol.trimmed()
        if throw and sol.status not in ("success", "stopped"):
            raise RuntimeError(
                f"flow ended with status {sol.status!r} at t={float(sol.t_final):.6g}: "
                f"{STATUS_HELP[sol.status]}."
            )
    return sol


def flow(
    model: eqx.Module,
    data,
    *,
    t1: float,
    loss: Callable = mse,
    t0: float = 0.0,
    field: AbstractField = GradientFlow(),
    solver=None,
    rtol: float = 1e-6,
    atol: float | None = None,
    controller: dfx.AbstractStepSizeController | None = None,
    save=None,
    metrics: dict[str, Callable] | None = None,
    stop_when: Callable | None = None,
    max_steps: int = 1_000_000,
    progress: bool | None = None,
    save_params: bool = False,
    dt0: float | None = None,
    throw: bool = False,
) -> FlowSolution:
    """Exact gradient flow of `loss(model, data)` from `model`: a thin layer over `solve_flow`.

    The model's inexact arrays are the state (`eqx.partition(model, eqx.is_inexact_array)`);
    everything else is held fixed. `metrics` are `{name: fn(model, data)}`; `stop_when(model)`
    returns a scalar whose first zero crossing ends the solve. Every other keyword is as in
    [`gradflow.solve_flow`][]. The solution's `model` is the final model (and `trajectory`,
    if `save_params=True`, is a model whose arrays have a leading time axis).

    **Example:**

    ```python
    data = gf.data.linear_teacher([3.0, 2.0, 1.0], key=key)
    model = gf.models.DeepLinear(3, 8, 3, depth=2, init_scale=1e-6, key=key)
    sol = gf.flow(model, data, t1=40.0)
    ```
    """
    t1f = _check_common(t1, rtol, atol, max_steps, stop_when, field)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    try:
        sol = _run(
            _OnModel(loss), params, (static, data), t0=t0, t1=t1f, field=field, solver=solver,
            rtol=rtol, atol=atol, controller=controller, save=save,
            metrics={k: _OnModel(f) for k, f in (metrics or {}).items()},
            stop_when=None if stop_when is None else _OnModel(stop_when, with_data=False),
            max_steps=max_steps, progress=progress, save_params=save_params, dt0=dt0,
            throw=throw, label="flow",
        )  # fmt: skip
    except (TypeError, ValueError) as e:
        # Only on failure: explain shape mismatches between model and data by name (a check
        # before every solve would cost a trace per call).
        _check_model_data(model, data, loss, cause=e)
        raise
    traj = None if sol.trajectory is None else eqx.combine(sol.trajectory, static)
    return eqx.tree_at(
        lambda s: (s.model, s.trajectory),
        sol,
        (eqx.combine(sol.params, static), traj),
        is_leaf=lambda x: x is None,
    )


def _check_model_data(model, data, loss, cause=None):
    """Raise a ValueError naming the shapes when `loss(model, data)` cannot be evaluated."""
    x = getattr(data, "x", None)
    if x is None or any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(model)):
        return
    try:
        jax.eval_shape(lambda m, d: loss(m, d), model, data)
    except Exception as e:
        raise ValueError(
            f"loss(model, data) cannot be evaluated: {str(e).rstrip('.')}. Check that the "
            f"model's in/out sizes match data.x {tuple(x.shape)} and data.y "
            f"{tuple(getattr(data, 'y').shape)}."
        ) from (cause or e)
