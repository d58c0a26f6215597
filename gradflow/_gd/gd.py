"""Discrete gradient descent (any optax optimizer) on the flow's loss and time axis.

`gf.gd` runs the optimizer in ONE jitted loop and records the same summaries as `gf.flow`
on the flow's log-spaced grid, at the steps k nearest to t/lr (time t = k·lr: one GD step of
learning rate lr advances gradient-flow time by lr). The loop is nested: an outer loop over
save points and an inner loop of plain steps between them, so the cost per step is one
gradient and one optax update, and memory does not grow with the number of steps (10⁷ steps
need no more than 10³).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._flow.options import log_grid
from .._flow.solution import DIVERGED, MAX_STEPS, STOPPED, SUCCESS, FlowSolution
from .._misc import require_x64
from ..losses import mse

#: A loss above this multiple of max(L(0), 1e-12) counts as diverged (as does a non-finite one).
DIVERGENCE_FACTOR = 1e12


def probe_lr(optimizer: optax.GradientTransformation, params) -> float:
    """The learning rate of `optimizer`, read off its first update of an all-ones gradient.

    For `optax.sgd(lr)` (with or without momentum) the first update is exactly `-lr·g`; for
    Adam-type optimizers it is `-lr·g/(|g| + eps)` ≈ `-lr`. This is the `lr` used for the
    time axis t = k·lr unless `lr=` is given.
    """
    ones = jax.tree.map(jnp.ones_like, params)
    updates, _ = optimizer.update(ones, optimizer.init(params), params)
    leaves = jax.tree.leaves(updates)
    if not leaves:
        raise ValueError("gd: the model has no trainable (inexact array) parameters.")
    lr = -float(jnp.ravel(leaves[0])[0])
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(
            f"gd: could not read a positive learning rate from the optimizer (got {lr}); "
            "pass lr=... explicitly."
        )
    return lr


class _Loss(eqx.Module):
    fn: Callable = eqx.field(static=True)

    def __call__(self, params, static, data):
        return self.fn(eqx.combine(params, static), data)


@eqx.filter_jit
def _run_gd(
    params, static, data, save_steps, num_steps, lr, key, *, loss, optimizer, metrics,
    stop_when, batch_size,
):  # fmt: skip
    n_data = data.x.shape[0]
    value_and_grad = jax.value_and_grad(loss)

    def summary(p):
        model = eqx.combine(p, static)
        values = {k: jnp.asarray(f(model, data), dtype=float) for k, f in metrics.items()}
        return {"loss": loss(p, static, data), "metrics": values}

    def stop_value(p):
        if stop_when is None:
            return jnp.asarray(1.0)
        return jnp.asarray(stop_when(eqx.combine(p, static)), float)

    def batch(k):
        if batch_size is None or batch_size >= n_data:
            return data
        idx = jax.random.choice(jax.random.fold_in(key, k), n_data, (batch_size,), replace=False)
        return jax.tree.map(
            lambda a: a[idx] if eqx.is_array(a) and a.ndim and a.shape[0] == n_data else a, data
        )

    loss0 = loss(params, static, data)
    limit = DIVERGENCE_FACTOR * jnp.maximum(loss0, 1e-12)

    def step(carry):
        p, opt_state, k, done, code, t_end, s_prev = carry
        value, g = value_and_grad(p, static, batch(k))
        updates, opt_state = optimizer.update(g, opt_state, p)
        p_new = optax.apply_updates(p, updates)
        bad = ~jnp.isfinite(value) | (value > limit)
        s_new = stop_value(p_new)
        crossed = (jnp.sign(s_new) != jnp.sign(s_prev)) & ~bad
        frac = s_prev / jnp.where(s_prev == s_new, 1.0, s_prev - s_new)
        t_cross = lr * (k + jnp.clip(frac, 0.0, 1.0))
        code = jnp.where(bad, DIVERGED, jnp.where(crossed, STOPPED, code))
        t_end = jnp.where(bad, lr * k, jnp.where(crossed, t_cross, lr * (k + 1)))
        p = jax.tree.map(lambda a, b: jnp.where(bad, a, b), p, p_new)
        return p, opt_state, k + jnp.where(bad, 0, 1), bad | crossed, code, t_end, s_new

    def segment(carry, k_save):
        def cond(c):
            return (c[2] < k_save) & ~c[3]

        carry = jax.lax.while_loop(cond, step, carry)
        reached = carry[2] >= k_save
        rec = summary(carry[0])
        rec = jax.tree.map(lambda x: jnp.where(reached, x, jnp.nan), rec)
        return carry, (jnp.where(reached, lr * k_save, jnp.nan), rec)

    init = (
        params, optimizer.init(params), jnp.asarray(0), jnp.asarray(False),
        jnp.asarray(SUCCESS), jnp.asarray(0.0), stop_value(params),
    )  # fmt: skip
    carry, (ts, recs) = jax.lax.scan(segment, init, save_steps)
    p, _, k, done, code, t_end, _ = carry
    code = jnp.where(done, code, jnp.where(k >= num_steps, SUCCESS, MAX_STEPS))
    last = summary(p)
    t = jnp.concatenate([ts, t_end[None]])
    rec = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), recs, last)
    stats = {"num_steps": k, "num_rejected": jnp.asarray(0), "num_grad_evals": k,
             "num_hvp_evals": jnp.asarray(0), "lr": jnp.asarray(lr)}  # fmt: skip
    return FlowSolution(
        t=t, loss=rec["loss"], metrics=rec["metrics"], params=p, model=None, t_final=t_end,
        status_code=code.astype(jnp.int32), stats=stats,
    )  # fmt: skip


def gd(
    model: eqx.Module,
    data,
    optimizer: optax.GradientTransformation,
    num_steps: int | None = None,
    *,
    t1: float | None = None,
    lr: float | None = None,
    loss: Callable = mse,
    save=None,
    metrics: dict[str, Callable] | None = None,
    stop_when: Callable | None = None,
    batch_size: int | None = None,
    key=None,
) -> FlowSolution:
    """Run `optimizer` (any optax optimizer) on `loss(model, data)`, recorded like `gf.flow`.

    **Arguments:**

    - `model`, `data`, `loss`, `metrics`, `stop_when`: as in [`gradflow.flow`][].
    - `optimizer`: e.g. `optax.sgd(1e-2)`; plain full-batch `sgd` is gradient descent.
    - `num_steps` or `t1`: how long to run (`num_steps = ceil(t1/lr)` when `t1` is given).
    - `lr`: flow time per step, so t = k·lr (default: probed from the optimizer, see
      `probe_lr`). For plain sgd this is exactly the learning rate. For heavy-ball or Nesterov
      momentum m, pass `lr=learning_rate/(1 - m)` to align with the flow (its steady step on
      a slowly varying gradient); for Adam-type optimizers the time axis is a convention.
    - `save`: `None` (the flow's default log grid up to the final time), an int, or times;
      times are snapped to the nearest step.
    - `batch_size`, `key`: mini-batch GD, a fresh random batch (without replacement) per step.
      `batch_size >= P` is exactly full-batch GD.

    **Returns:**

    A [`gradflow.FlowSolution`][]: `t` (= k·lr at the saved steps, then `t_final`), `loss`,
    `metrics`, `model`, `status` (`"success"`, `"stopped"` with the crossing located by linear
    interpolation between the two steps around it, or `"diverged"` with the time of the first
    non-finite or exploding loss), `stats` (`num_steps`, `num_grad_evals`, `lr`).
    """
    require_x64("gf.gd")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    lr = probe_lr(optimizer, params) if lr is None else float(lr)
    if (num_steps is None) == (t1 is None):
        raise ValueError("gd: pass exactly one of num_steps=... or t1=... .")
    if num_steps is None:
        if not (t1 > 0 and math.isfinite(t1)):
            raise ValueError(f"gd: t1 must be finite and > 0, got {t1}.")
        num_steps = int(math.ceil(t1 / lr - 1e-9))
    if int(num_steps) < 1:
        raise ValueError(f"gd: num_steps must be >= 1, got {num_steps}.")
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ValueError(f"gd: batch_size must be >= 1, got {batch_size}.")
        if key is None and batch_size < data.x.shape[0]:
            raise ValueError("gd: mini-batch GD needs key=jax.random.key(...).")
    num_steps = int(num_steps)
    t_end = num_steps * lr
    if save is None:
        times = log_grid(t_end)
    elif isinstance(save, int) and not isinstance(save, bool):
        times = log_grid(t_end, save)
    else:
        times = np.asarray(save, dtype=np.float64).reshape(-1)
    steps = np.clip(np.rint(times / lr), 0, num_steps).astype(np.int64)
    # always run to num_steps: the last record is the final step whatever the save times
    steps = np.unique(np.append(steps, num_steps))
    sol = _run_gd(
        params, static, data, jnp.asarray(steps), num_steps, jnp.asarray(lr),
        key if key is not None else jax.random.key(0), loss=_Loss(loss), optimizer=optimizer,
        metrics=metrics or {}, stop_when=stop_when, batch_size=batch_size,
    )  # fmt: skip
    sol = eqx.tree_at(
        lambda s: s.model, sol, eqx.combine(sol.params, static), is_leaf=lambda x: x is None
    )
    if not isinstance(sol.t, jax.core.Tracer):
        sol = sol.trimmed()
    return sol
