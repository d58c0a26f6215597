"""`gf.solve_flow` (any loss over any pytree) and `gf.flow` (a model and a dataset)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree

from .._custom_types import PyTree
from .._misc import require_x64
from ..losses import mse
from . import checkpoint as _checkpoint
from . import crossings as _crossings
from . import progress as _progress
from .field import AbstractField, GradientFlow
from .options import (
    T_INF,
    default_atol,
    default_controller,
    evals_per_step,
    gate_linear_start,
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
from .traced import traced_once

#: Save grids of at most this many floats (save times × parameters) keep the states and
#: compute the summaries (loss, metrics) after the solve, vmapped (see `_solve`).
POST_SUMMARY_MAX = 1 << 20

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


class _Flat(eqx.Module):
    """The solve on one flat vector: what the solver steps is `ravel_pytree(params)`.

    Every solver operation (stage combinations, error norms, selects, saving) is then one
    array op instead of one per leaf. Measured on the benchmark cases (`Auto`, CPU): 2-layer
    linear σ = 1e-9 (2 leaves) 11.7 → 8.9 ms, 3-layer σ = 1e-3 (3 leaves) 83 → 68 ms; Tsit5
    on the 3-layer case 343 → 245 ms. One case went the other way: RKC with ~44 stages per
    step (3-layer σ = 1e-6, no longer `Auto`'s choice there) 1.54 → 1.84 s. The loss,
    metrics, stop conditions and fields still see the parameter pytree (`unravel`).
    """

    unravel: Callable = eqx.field(static=True)
    loss_fn: Callable
    field: AbstractField

    def wrap(self, fn):
        """`fn(params, args)` as a function of the flat state."""
        return lambda z, a: fn(self.unravel(z), a)

    def vf(self, t, z, a):
        """The field at the flat state, raveled: `field` sees the pytree. (Taking the
        gradient of the flat loss instead, through `unravel`, cost RKC 2.4× on the 3-layer
        σ = 1e-6 case: the transposed slices become pads in every stage.)"""
        return _flat_vf(self, t, z, a)


@traced_once  # called at every stage of every method: traced once (`traced.py`)
def _flat_vf(flat, t, z, a):
    return ravel_pytree(flat.field(flat.loss_fn, t, flat.unravel(z), a))[0]


def _setup(loss_fn, params, *, field, solver, rtol, atol, controller, progress, crossings):
    """The flat initial state and its `_Flat` view, the vector-field term, the solver (`Auto`
    given the default controller's tolerances) and the (guarded) step-size controller."""
    y0, unravel = ravel_pytree(params)
    flat = _Flat(unravel, loss_fn, field)
    loss_flat = flat.wrap(loss_fn)
    if atol is None:
        atol = default_atol(params, rtol)
    if controller is None:
        controller = default_controller(solver, rtol, atol)
        solver = with_tolerances(solver, rtol, atol)
    # The guard checks every accepted step for divergence (and step-size collapse) at the
    # cost of one norm, instead of a diffrax event (whose machinery costs ~10% of a small
    # solve). A fixed-step controller cannot be wrapped: there divergence is an event.
    guarded = isinstance(controller, dfx.AbstractAdaptiveStepSizeController)
    if crossings is not None and not guarded:
        raise ValueError(
            "crossings=... needs an adaptive step-size controller (the default); a fixed-step "
            f"controller {type(controller).__name__} cannot record them."
        )
    if guarded:
        watch = None
        if crossings is not None:
            fn = None if crossings.fn is None else flat.wrap(crossings.fn)
            watch = _crossings.rate_fn(field, flat.vf, loss_flat, fn)
        levels = () if crossings is None else crossings.levels
        controller = _progress.GuardController(
            controller, loss_flat, progress, _diverged, watch, levels
        )
    term = dfx.ODETerm(flat.vf)
    return y0, flat, term, solver, controller, guarded, atol


#: what a segment hands to the next one's `diffeqsolve` (besides t, y and dt0)
_RESUMED = ("solver_state", "controller_state", "made_jump")


@eqx.filter_jit
def _init_carry(loss_fn, params, args, t0, t1, *, solver, **kw):
    """The state diffrax builds before its first step (for a solve run in segments).

    Mirrors `diffeqsolve`'s own initialisation (controller first: it chooses the first
    step; then the solver at [t0, tnext]) on the same wrapped term, so that segment 0
    starts bitwise where an uninterrupted solve starts.
    """
    from diffrax._term import WrapTerm  # what diffeqsolve hands to the solver

    y0, _, term, solver, controller, guarded, _ = _setup(loss_fn, params, solver=solver, **kw)
    if not guarded:
        raise ValueError("checkpoint=... needs an adaptive step-size controller (the default).")
    direction = jnp.where(t0 < t1, 1, -1)
    terms = WrapTerm(term, direction)
    controller = controller.wrap(direction)
    tnext, c_state = controller.init(
        terms, t0, t1, y0, None, args, solver.func, solver.error_order(terms)
    )
    tnext = jnp.minimum(tnext, t1)
    s_state = solver.init(terms, t0, tnext, y0, args)
    # arrays throughout (diffrax's initial states hold Python bools): one trace for all
    # segments
    as_array = lambda x: jnp.asarray(x)
    return {
        "t": jnp.asarray(t0, float),
        "y": y0,  # the flat state (`_Flat`)
        "solver_state": jax.tree.map(as_array, s_state),
        "controller_state": jax.tree.map(as_array, c_state),
        "made_jump": jnp.asarray(False),
        "tnext": jnp.asarray(tnext, float),
    }


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
    crossings=None,
    resume=None,
):
    """One solve; with `resume` (a carry of `_init_carry` or of the previous segment, with
    `dt0` taking it to exactly its `tnext`) one segment of at most `max_steps` steps, and
    the carry for the next comes back beside the solution."""
    y0, flat, term, solver, controller, guarded, atol = _setup(
        loss_fn, params, field=field, solver=solver, rtol=rtol, atol=atol,
        controller=controller, progress=progress, crossings=crossings,
    )  # fmt: skip
    unravel = flat.unravel
    if resume is not None:
        t0, y0 = resume["t"], resume["y"]
        # save times already behind us were saved by an earlier segment; diffrax wants all
        # of them in [t0, t1] (the values it saves there are dropped when merging)
        ts = jnp.maximum(ts, t0)

    def summary(t, z, a):
        # summaries are stored as floats so that unreached saves can hold nan
        y = unravel(z)
        values = {k: jnp.asarray(f(y, a), dtype=float) for k, f in metrics.items()}
        out = {"loss": loss_fn(y, a), "metrics": values}
        if save_params:
            out["params"] = y
        return out

    counted = hasattr(solver, "work")  # solvers that count their own work in their state
    # Summaries after the solve, vmapped over the saved states, when those fit in
    # POST_SUMMARY_MAX floats: a summary function inside diffrax's save loop costs every step
    # ~3 µs on CPU, whether or not it saves (Tsit5 on the Type III benchmark case, 31,358
    # steps: 172 → 81 ms; 2-layer linear σ = 1e-3: 6.2 → 5.5 ms), and the states take
    # n_save × P floats instead.
    n_params = sum(x.size for x in jax.tree.leaves(params))
    post = ts.shape[0] * n_params <= POST_SUMMARY_MAX
    saveat = dfx.SaveAt(
        subs=[
            dfx.SubSaveAt(ts=ts, fn=(lambda t, y, a: y) if post else summary),
            dfx.SubSaveAt(t1=True),
        ],
        solver_state=counted or resume is not None,
        controller_state=crossings is not None or resume is not None,
        made_jump=resume is not None,
    )
    conds = {}
    if not guarded:
        conds["diverged"] = lambda t, y, args, **kw: _diverged(y)
    if stop_when is not None:
        stop_flat = flat.wrap(stop_when)
        conds["stop"] = lambda t, y, args, **kw: stop_flat(y, args)
        if infinite:
            # With t1 = inf, a stop condition that never changes sign must not spin until
            # max_steps: once the flow has settled on a fixed point (rms |dθ/dt| below
            # atol, the noise floor of an explicit solver in a stiff converged tail) it will
            # not cross, so end with status "not_stopped".
            # Costs one extra field evaluation per step, in this mode only.
            settle = SETTLE_FACTOR * atol
            conds["settled"] = lambda t, y, args, **kw: _rms(flat.vf(t, y, args)) < settle
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
        y0,
        args,
        saveat=saveat,
        stepsize_controller=controller,
        event=event,
        max_steps=max_steps,
        throw=False,
        **({} if resume is None else {k: resume[k] for k in _RESUMED}),
    )
    grid_ts, final_ts = sol.ts
    grid, final = sol.ys
    final = jax.tree.map(lambda x: x[0], final)
    t_final = final_ts[0]
    if post:
        # unreached save times hold inf: summarise the final state there instead (masked
        # below), so that no summary ever sees a non-finite state it did not produce
        seen = jnp.isfinite(grid_ts)

        def state(g, f):
            return jnp.where(jnp.reshape(seen, (-1,) + (1,) * (g.ndim - 1)), g, f[None])

        states = jax.tree.map(state, grid, final)
        grid = jax.vmap(lambda t, y: summary(t, y, args))(jnp.where(seen, grid_ts, 0.0), states)

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
    counts = (
        sol.stats["num_steps"], sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]
    )  # fmt: skip
    work = solver.work(sol.solver_state) if counted else None
    stats = _work_stats(solver, field, *counts, work, watched=crossings is not None)
    crossed = None
    if crossings is not None:
        times = sol.controller_state[4][-1]
        # a crossing inside the step cut short by a stop or divergence, after t_final, is
        # not a crossing of the solution
        crossed = jnp.where(times <= t_final, times, jnp.nan)
    out = FlowSolution(
        t=record(grid_ts, t_final),
        loss=rec["loss"],
        metrics=rec["metrics"],
        params=unravel(final),
        model=None,
        t_final=t_final,
        status_code=code.astype(jnp.int32),
        stats=stats,
        trajectory=rec["params"] if save_params else None,
        crossings=crossed,
        crossing_levels=None if crossings is None else crossings.levels,
    )
    if resume is None:
        return out
    # the next segment starts at the last accepted state and takes the step this one would
    # have taken next (kept by the guard, before diffrax clips it to t1)
    (next_t1, kept), t1_ = sol.controller_state[3], jnp.asarray(t1, float)
    floor = t1_
    for _ in range(100):  # diffrax rounds a step end within 100 ulps of t1 to t1
        floor = jnp.nextafter(floor, -jnp.inf)
    prev = t_final
    next_t1 = jnp.where(next_t1 > floor, jnp.where(kept, t1_, prev + 0.5 * (t1_ - prev)), next_t1)
    carry = {
        "t": t_final,
        "y": final,
        "solver_state": sol.solver_state,
        "controller_state": sol.controller_state,
        "made_jump": jnp.asarray(sol.made_jump),
        "tnext": jnp.minimum(next_t1, t1_),
    }
    raw = {"counts": counts, "grid_ts": grid_ts, "grid": grid, "last": last, "status_code": code}
    return out, carry, raw


def _work_stats(solver, field, n_steps, n_acc, n_rej, work, *, watched):
    """`sol.stats`: steps, and gradient/HVP evaluations in the units of one GD step."""
    if work is not None:
        # The solver counts accepted steps only (diffrax drops the state of a rejected step);
        # rejected steps are charged at the mean cost of an accepted one: an estimate.
        per_acc = lambda n: n + jnp.round(n * n_rej / jnp.maximum(n_acc, 1)).astype(n.dtype)
        evals = per_acc(jnp.asarray(work["num_vf"]).astype(jnp.int64))
        jvps = per_acc(jnp.asarray(work["num_jvp"]).astype(jnp.int64))
        extra = {k: v for k, v in work.items() if k not in ("num_vf", "num_jvp")}
    else:
        per_step, at_start = evals_per_step(solver)
        evals = jnp.where(per_step >= 0, per_step * n_steps + at_start, -1)
        jvps, extra = jnp.zeros_like(evals), {}
    if watched:
        # crossings cost one field evaluation at t0 and one per accepted step (plus, for a
        # user function, one JVP of it)
        evals = jnp.where(evals >= 0, evals + n_acc + 1, evals)
    return {
        "num_steps": n_steps,
        "num_accepted": n_acc,
        "num_rejected": n_rej,
        "num_grad_evals": evals * field.grads_per_call,
        # JVPs of the field (power iterations) are Hessian-vector products of the loss
        "num_hvp_evals": evals * field.hvps_per_call + jvps,
        **extra,
    }


def _check_common(t1, rtol, atol, max_steps, stop_when, field, where="gf.flow"):
    require_x64(where)
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
    crossings=None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10_000,
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
    - `crossings`: loss levels (e.g. `[5.0, 1.0]`) or `gf.Crossings(levels, fn)` with
      `fn(params) -> scalar`: the time of the first crossing of each level is located by
      root finding and recorded in `sol.crossings` while the solve goes on (one extra
      field evaluation per accepted step; the steps are unchanged).
    - `checkpoint`: a file path. The solve runs in segments of `checkpoint_every` steps and
      writes its state (time, parameters, solver and controller state, record so far,
      counts) there atomically after each; running the same call again resumes from it and
      gives the same result as an uninterrupted solve (a finished checkpoint returns its
      result at once; one from a different problem or configuration is refused).
    - `checkpoint_every`: steps per segment (one checkpoint write each; default 10,000).

    **Returns:**

    A [`gradflow.FlowSolution`][] with `t`, `loss`, `metrics`, `params`, `t_final`, `status`,
    `stats` (and `crossings` if asked).
    """
    t1f = _check_common(t1, rtol, atol, max_steps, stop_when, field, where="gf.solve_flow")
    if stop_when is not None and not isinstance(stop_when, eqx.Module):
        stop_when = _ParamsOnly(stop_when)
    crossings = _crossings.as_crossings(crossings)
    if crossings is not None and crossings.fn is not None:
        fn = crossings.fn
        crossings = _crossings.Crossings(crossings.levels, fn if isinstance(fn, eqx.Module)
                                         else _ParamsOnly(fn))  # fmt: skip
    return _run(
        loss_fn, params, args, t0=t0, t1=t1f, field=field, solver=solver, rtol=rtol,
        atol=atol, controller=controller, save=save, metrics=metrics or {},
        stop_when=stop_when, max_steps=max_steps, progress=progress, save_params=save_params,
        dt0=dt0, throw=throw, label="flow", crossings=crossings, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )  # fmt: skip


def _run(
    loss_fn, params, args, *, t0, t1, save, progress, throw, label, solver, checkpoint=None,
    checkpoint_every=10_000, **kw,
):  # fmt: skip
    infinite = math.isinf(t1)
    ts = resolve_save(save, t0, t1)
    show = _progress.use_progress(progress, params, args)
    solver = gate_linear_start(resolve_solver(solver), params)
    if checkpoint is not None:
        _check_checkpoint(checkpoint, checkpoint_every, params, args)
        config = _checkpoint.config_of(
            params=params, args=args, t0=t0, t1=t1, ts=ts, solver=solver, loss=loss_fn, **kw,
        )  # fmt: skip
    if show:
        _progress.open_line(label)
    try:
        if checkpoint is None:
            # numpy, not jnp: filter_jit traces both, and jnp.asarray costs ~0.08 ms a call
            sol = _solve(
                loss_fn, params, args, np.asarray(t0, float),
                np.asarray(T_INF if infinite else t1, float), np.asarray(ts, float),
                infinite=infinite, solver=solver, progress=show, **kw,
            )  # fmt: skip
        else:
            sol = _checkpoint.run(
                checkpoint, checkpoint_every, loss_fn=loss_fn, params=params, args=args,
                t0=t0, t1=T_INF if infinite else t1, ts=ts, config=config, infinite=infinite,
                solver=solver, progress=show, **kw,
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


def _check_checkpoint(checkpoint, every, params, args):
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"checkpoint_every must be a positive number of steps, got {every!r}.")
    if not isinstance(checkpoint, str | os.PathLike):
        raise TypeError(f"checkpoint must be a file path, got {type(checkpoint).__name__}.")
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params, args))):
        raise ValueError(
            "checkpoint=... works on concrete inputs only (not under jax.jit/vmap); use "
            "gf.sweep(store=...) to resume batched solves."
        )


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
    crossings=None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10_000,
) -> FlowSolution:
    """Exact gradient flow of `loss(model, data)` from `model`: a thin layer over `solve_flow`.

    The model's inexact arrays are the state (`eqx.partition(model, eqx.is_inexact_array)`);
    everything else is held fixed. `metrics` are `{name: fn(model, data)}`; `stop_when(model)`
    returns a scalar whose first zero crossing ends the solve; `crossings` are loss levels
    or `gf.Crossings(levels, fn)` with `fn(model) -> scalar`, whose first crossing times are
    recorded (`sol.crossings`) without stopping; `checkpoint="run.ckpt"` makes the solve
    resumable (see [`gradflow.solve_flow`][]). Every other keyword is as in
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
    crossings = _crossings.as_crossings(crossings)
    if crossings is not None and crossings.fn is not None:
        crossings = _crossings.Crossings(crossings.levels, _OnModel(crossings.fn, with_data=False))
    try:
        sol = _run(
            _OnModel(loss), params, (static, data), t0=t0, t1=t1f, field=field, solver=solver,
            rtol=rtol, atol=atol, controller=controller, save=save,
            metrics={k: _OnModel(f) for k, f in (metrics or {}).items()},
            stop_when=None if stop_when is None else _OnModel(stop_when, with_data=False),
            max_steps=max_steps, progress=progress, save_params=save_params, dt0=dt0,
            throw=throw, label="flow", crossings=crossings, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
        )  # fmt: skip
    except (TypeError, ValueError) as e:
        # Only on failure: explain shape mismatches between model and data by name (a check
        # before every solve would cost a trace per call).
        _check_model_data(model, data, loss, cause=e)
        raise
    traj = None if sol.trajectory is None else eqx.combine(sol.trajectory, static)
    # (`dataclasses.replace`, not `eqx.tree_at`: 0.3 ms a call, ~5% of a small solve)
    return dataclasses.replace(sol, model=eqx.combine(sol.params, static), trajectory=traj)


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
