"""One runner per method. Each returns a row: work, timing, the loss on the common grid.

Rows hold `t`, `loss` (the loss on `problem.ts`, for drop times), `num_steps`,
`num_grad_evals` (`None` where the method does not expose it), `final_loss`, `status` and the
timing of `common.timed` (`first_s`, `run_s`, `compile_s`, `repeats`).
"""

from __future__ import annotations

import contextlib
import io

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.integrate
from jax.flatten_util import ravel_pytree

import gradflow as gf
from gradflow._flow.options import evals_per_step

from .common import Problem, timed

RTOL = 1e-6


def _row(t, loss, steps, evals, status, timing, **extra) -> dict:
    loss = np.asarray(loss, float)
    row = {
        "t": np.asarray(t, float),
        "loss": loss,
        "num_steps": None if steps is None else int(steps),
        "num_grad_evals": None if evals is None else int(evals),
        "final_loss": float(loss[-1]) if loss.size else float("nan"),
        "status": str(status),
    }
    row.update(timing)
    row.update(extra)
    return row


# --------------------------------------------------------------------------- gradflow
def run_gradflow(problem: Problem, *, solver=None, rtol=RTOL, atol=None, progress=False,
                 max_steps=1_000_000, repeats=3, clear=True, crossings=None) -> dict:  # fmt: skip
    """`gf.flow` as a user calls it (default solver "auto" unless `solver=`, default atol).

    `crossings`: loss levels whose first crossings are root-found (`sol.crossings`, in the
    row as `crossings`); used for untimed accuracy runs only (it costs a gradient per step).
    """

    kw = dict(t1=problem.t1, save=problem.ts, loss=problem.loss, solver=solver, rtol=rtol,
              atol=atol, max_steps=max_steps, crossings=crossings)  # fmt: skip

    def call():
        if progress:
            # the live line goes to a throwaway stream: we time the callbacks, not a terminal
            with contextlib.redirect_stderr(io.StringIO()):
                return gf.flow(problem.model, problem.data, progress=True, **kw)
        return gf.flow(problem.model, problem.data, progress=False, **kw)

    if repeats is None:
        return call, _gradflow_row
    return _gradflow_row(*timed(call, repeats=repeats, clear=clear))


def _gradflow_row(sol, timing) -> dict:
    evals = int(sol.stats["num_grad_evals"])
    extra = {k: int(sol.stats[k]) for k in ("num_rejected", "num_stiff_steps",
             "num_sliding_steps", "num_switches", "num_hvp_evals", "num_linear_steps")
             if k in sol.stats}  # fmt: skip
    if sol.crossings is not None:
        extra["crossings"] = np.asarray(sol.crossings, float)
    return _row(sol.t, sol.loss, sol.stats["num_steps"], evals if evals >= 0 else None,
                sol.status, timing, params=sol.params, **extra)  # fmt: skip


def reference(problem: Problem, kind: str = "dopri8", lr: float | None = None) -> dict:
    """Reference solution: gradflow Dopri8 at rtol 1e-12, atol 1e-9·σ (or LSODA 1e-10, or
    small-lr GD, see `reference_gd`). Dopri8 and LSODA locate their drops exactly (`drops`:
    root-found crossings of the level midpoints, `gf.Crossings` resp. SciPy events)."""
    mids = (
        None
        if problem.levels is None
        else [float(x) for x in gf.analysis.drop_levels(problem.levels)]
    )
    if kind == "dopri8":
        ref = run_gradflow(problem, solver="dopri8", rtol=1e-12, atol=1e-9 * problem.sigma,
                           max_steps=10_000_000, repeats=0, crossings=mids)  # fmt: skip
        ref["drops"] = ref["crossings"]
        return ref
    if kind == "lsoda":
        return run_scipy(problem, "LSODA", rtol=1e-10, atol=1e-9 * problem.sigma, jac=True,
                         repeats=0, crossings=mids)  # fmt: skip
    if kind == "gd":
        return reference_gd(problem, lr)
    raise ValueError(kind)


def reference_gd(problem: Problem, lr: float) -> dict:
    """Small-lr GD as the reference of a non-smooth flow (ReLU): the loss curve and final
    state of GD at `lr`, and drop times Richardson-extrapolated to lr → 0 from the runs at
    `lr` and `2 lr` (GD's drop times are first order in lr: 2 t(lr) − t(2 lr)).

    The drops need the plateau levels; when the problem has none they are measured on this
    run's loss curve and stored in the problem (`problem.levels`).
    """
    from .common import drop_times, measured_levels

    fine = run_gd(problem, lr, repeats=0)
    coarse = run_gd(problem, 2 * lr, repeats=0)
    if problem.levels is None:
        problem.levels = measured_levels(fine["t"], fine["loss"])
    d1 = drop_times(problem, fine["t"], fine["loss"])
    d2 = drop_times(problem, coarse["t"], coarse["loss"])
    fine["drops"] = 2 * d1 - d2
    fine["drops_unextrapolated"] = d1
    return fine


# --------------------------------------------------------------------------- diffrax by hand
@eqx.filter_jit
def _diffrax_solve(y0, args, ts, t1, atol, *, loss, solver, rtol, pi, max_steps):
    term = dfx.ODETerm(lambda t, y, a: jax.tree.map(jnp.negative, jax.grad(loss)(y, a)))
    if pi:
        ctrl = dfx.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.3)
    else:
        ctrl = dfx.PIDController(rtol=rtol, atol=atol)
    sol = dfx.diffeqsolve(
        term, solver, 0.0, t1, None, y0, args,
        saveat=dfx.SaveAt(ts=ts, fn=lambda t, y, a: loss(y, a)),
        stepsize_controller=ctrl, max_steps=max_steps, throw=False,
    )  # fmt: skip
    return sol.ts, sol.ys, sol.stats["num_steps"], sol.result


def run_diffrax(problem: Problem, solver: str = "tsit5", *, rtol=RTOL, max_steps=1_000_000,
                repeats=3) -> dict:  # fmt: skip
    """The same solve written directly against diffrax: Tsit5 with gradflow's PI gains, or
    Kvaerno5 with diffrax's default I-controller (as gradflow would choose), same atol."""
    s = {"tsit5": dfx.Tsit5(), "kvaerno5": dfx.Kvaerno5()}[solver]
    atol = problem.atol
    pi = solver == "tsit5"

    def call():
        return _diffrax_solve(problem.params, problem.args, jnp.asarray(problem.ts),
                              jnp.asarray(problem.t1), jnp.asarray(atol), loss=problem.loss_params,
                              solver=s, rtol=rtol, pi=pi, max_steps=max_steps)  # fmt: skip

    def finish(out, timing):
        return _diffrax_row(s, out, timing, max_steps)

    if repeats is None:
        return call, finish
    return finish(*timed(call, repeats=repeats))


def _diffrax_row(s, out, timing, max_steps) -> dict:
    t, loss, steps, result = out
    per, start = evals_per_step(s)
    evals = per * int(steps) + start if per >= 0 else None
    ok = result == dfx.RESULTS.successful
    status = "success" if ok else ("max_steps" if result == dfx.RESULTS.max_steps_reached
                                   else "failed")  # fmt: skip
    t, loss = np.asarray(t), np.asarray(loss)
    return _row(t[np.isfinite(t)], loss[np.isfinite(t)], steps, evals, status, timing,
                max_steps=max_steps)  # fmt: skip


# --------------------------------------------------------------------------- SciPy
def _flat_functions(problem: Problem):
    flat0, unravel = ravel_pytree(problem.params)
    args = problem.args

    def loss_flat(v):
        return problem.loss_params(unravel(v), args)

    rhs = jax.jit(lambda v: -jax.grad(loss_flat)(v))
    jac = jax.jit(lambda v: -jax.hessian(loss_flat)(v))
    losses = jax.jit(jax.vmap(loss_flat, in_axes=1))
    return np.asarray(flat0), unravel, rhs, jac, losses


def run_scipy(problem: Problem, method: str, *, rtol=RTOL, atol=None, jac=False,
              repeats=3, crossings=None) -> dict:  # fmt: skip
    """`scipy.integrate.solve_ivp` on the flattened flow; the gradient (and, with `jac=True`,
    the Hessian as Jacobian) are jitted JAX functions called from SciPy's loop. `crossings`
    (loss levels, untimed reference runs only): their first crossings as SciPy events
    (`drops` in the row)."""
    atol = problem.atol if atol is None else atol
    y0, unravel, rhs, hess, losses = _flat_functions(problem)
    loss1 = jax.jit(lambda v: problem.loss_params(unravel(v), problem.args))
    events = None
    if crossings is not None:
        events = [lambda t, y, c=float(c): float(loss1(jnp.asarray(y))) - c for c in crossings]

    def call():
        sol = scipy.integrate.solve_ivp(
            lambda t, y: np.asarray(rhs(y)), (0.0, problem.t1), y0, method=method,
            t_eval=problem.ts, rtol=rtol, atol=atol, events=events,
            jac=(lambda t, y: np.asarray(hess(y))) if jac else None,
        )  # fmt: skip
        return sol, np.asarray(losses(jnp.asarray(sol.y)))

    (sol, loss), timing = timed(call, repeats=repeats, clear=True)
    # solve_ivp does not report its step count; nfev counts every gradient (LSODA's
    # finite-difference Jacobians included), njev the dense Hessians (BDF with jac=True)
    extra = {}
    if crossings is not None:
        extra["drops"] = np.array([te[0] if len(te) else np.nan for te in sol.t_events])
    return _row(sol.t, loss, None, sol.nfev, "success" if sol.success else "failed", timing,
                num_jac_evals=int(sol.njev), message=str(sol.message),
                params=unravel(jnp.asarray(sol.y[:, -1])), **extra)  # fmt: skip


# --------------------------------------------------------------------------- GD (optax)
def lambda_max(problem: Problem, params) -> float:
    """Largest Hessian eigenvalue of the loss at `params` (dense `jax.hessian`, `eigvalsh`)."""
    flat, unravel = ravel_pytree(params)
    # jitted: eagerly, the Hessian's ~50 operations were compiled one by one
    h = jax.jit(jax.hessian(lambda v: problem.loss_params(unravel(v), problem.args)))(flat)
    return float(np.linalg.eigvalsh(np.asarray(h))[-1])


def run_gd(problem: Problem, lr: float, *, repeats=3) -> dict:
    """Plain full-batch GD, `gf.gd(model, data, optax.sgd(lr), t1=T)`: one jitted loop.
    With `repeats=None`, `(call, finish)` for `timed_group` instead of the row.

    The optimizer object is built once: `gf.gd` jits with the optimizer as a static argument,
    and every `optax.sgd(lr)` call makes new closures, so a fresh one recompiles every call.
    """
    opt = optax.sgd(lr)

    def call():
        return gf.gd(
            problem.model, problem.data, opt, t1=problem.t1, save=problem.ts, loss=problem.loss
        )

    def finish(sol, timing):
        steps = int(sol.stats["num_steps"])
        return _row(sol.t, sol.loss, steps, steps, sol.status, timing, lr=lr,
                    params=sol.params)  # fmt: skip

    if repeats is None:  # the caller times it (`timed_group`)
        return call, finish
    return finish(*timed(call, repeats=repeats))


# --------------------------------------------------------------------------- torchdiffeq
def torch_available() -> str | None:
    """`None` if torch and torchdiffeq import, else the reason they do not."""
    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"{type(e).__name__}: {e}"
    return None


def run_torchdiffeq(problem: Problem, *, rtol=RTOL, repeats=3) -> dict:
    """torchdiffeq `odeint(method="dopri5")` on the same flow, float64, autograd gradients."""
    import torch
    import torchdiffeq

    torch.set_num_threads(max(1, torch.get_num_threads()))
    x = torch.tensor(np.asarray(problem.data.x), dtype=torch.float64)
    y = torch.tensor(np.asarray(problem.data.y), dtype=torch.float64)
    leaves = [np.asarray(w) for w in problem.params.weights]
    shapes = [w.shape for w in leaves]
    sizes = [w.size for w in leaves]
    y0 = torch.tensor(np.concatenate([w.ravel() for w in leaves]), dtype=torch.float64)
    ts = torch.tensor(problem.ts, dtype=torch.float64)
    atol = problem.atol
    counter = {"nfe": 0}

    def loss_fn(theta):
        ws = [p.reshape(s) for p, s in zip(torch.split(theta, sizes), shapes)]
        h = x.T
        for w in ws:
            h = w @ h
        return 0.5 * torch.mean(torch.sum((h.T - y) ** 2, dim=-1))

    def func(t, theta):
        counter["nfe"] += 1
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn(th), th)
        return -g

    def call():
        counter["nfe"] = 0
        with torch.no_grad():
            traj = torchdiffeq.odeint(func, y0, ts, method="dopri5", rtol=rtol, atol=atol)
            loss = torch.stack([loss_fn(th) for th in traj])
        return loss.numpy()

    loss, timing = timed(call, repeats=repeats, clear=False)
    return _row(
        problem.ts,
        loss,
        None,
        counter["nfe"],
        "success",
        timing,
        note=f"torch threads: {torch.get_num_threads()}",
    )
