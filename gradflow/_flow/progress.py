"""A live progress line for long solves, also with `t1 = inf`.

diffrax's progress meters only see the fraction `(t - t0)/(t1 - t0)`, which is useless when
`t1 = inf`. Instead we wrap the step-size controller: it sees every step's time and state, and
every `n` steps calls back to Python, which prints `t`, the loss and the step count and answers
with the next `n` so that updates arrive about every `interval` seconds. Between callbacks
the cost is one integer decrement and one `lax.cond`: with Tsit5 the overhead is within
noise (3-layer benchmark case, 8,354 steps: −0.6%). With RKC it is ~10% (same case, 2,119
steps: +10.2%, with a callback that never fires): on CPU the presence of a host callback in
the loop body slows RKC's nested stage loop. `benchmarks/` tracks it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from . import crossings as _crossings


class _Line:
    """The single live line on stderr; one active at a time (module global, no retracing)."""

    def __init__(self, label: str, interval: float = 0.25, stream=None):
        self.label = label
        self.interval = interval
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.last_time = self.start
        self.last_steps = 0
        self.calls = 0
        self.printed = False

    def report(self, t, loss, steps):
        now = time.perf_counter()
        t, loss, steps = float(np.max(t)), float(np.max(loss)), int(np.max(steps))
        rate = (steps - self.last_steps) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_steps = now, steps
        self.calls += 1
        self.stream.write(
            f"\r{self.label} t={t:.4g}  loss={loss:.6g}  steps={steps}  "
            f"[{now - self.start:.1f}s, {rate:.0f} steps/s]   "
        )
        self.stream.flush()
        self.printed = True
        return np.int64(max(int(rate * self.interval), 16))

    def close(self):
        if self.printed:
            self.stream.write("\n")
            self.stream.flush()


_ACTIVE: _Line | None = None


def _report(t, loss, steps):
    if _ACTIVE is None:
        return np.int64(1 << 30)
    return _ACTIVE.report(t, loss, steps)


def open_line(label: str, interval: float = 0.25) -> _Line:
    global _ACTIVE
    _ACTIVE = _Line(label, interval)
    return _ACTIVE


def close_line():
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.close()
    _ACTIVE = None


def use_progress(progress, *leaves) -> bool:
    """Resolve `progress=None` ("auto"): on for concrete calls when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(leaves)):
        return False
    return sys.stderr.isatty()


#: Steps before the first progress callback.
FIRST_REPORT = 512

#: A step shorter than this many ulps of |t| cannot advance time: the step size has collapsed
#: (a finite-time blow-up, or a vector field that is singular there).
STALL_ULPS = 64.0


class GuardController(dfx.AbstractAdaptiveStepSizeController):
    """Wraps an adaptive controller: detects step-size collapse and reports progress.

    1. Divergence: an accepted step whose parameters are non-finite or huge (`diverged`), or
       a collapsed step size — shorter than `STALL_ULPS` ulps of |t|, so time can no longer
       advance (without this a finite-time blow-up spins until `max_steps`). Either ends the
       solve with `RESULTS.dt_min_reached`, which gradflow reports as `"diverged"`.
    2. Progress (if `report`): every few steps `(t, loss, steps)` goes to the live line.
    3. Crossings (if `watch`): on every accepted step, the first crossing of each of `levels`
       by the watched scalar is located on a Hermite cubic (see `crossings.py`) and kept in
       the state; the steps are not changed.
    4. The proposed next step end (and whether the step was accepted) is kept in the state,
       so that a solve resumed from a checkpoint takes exactly the step the uninterrupted one
       would have taken.

    State: `(inner_state, countdown, steps, (next_t1, kept), crossing_record_or_None)`.
    """

    inner: dfx.AbstractAdaptiveStepSizeController
    loss_fn: Callable = eqx.field(static=True)
    report: bool = eqx.field(static=True)
    diverged: Callable = eqx.field(static=True)
    rtol: float
    atol: float
    norm: Callable = eqx.field(static=True)
    watch: Callable | None = eqx.field(static=True)
    levels: tuple = eqx.field(static=True)

    def __init__(self, inner, loss_fn, report: bool, diverged: Callable, watch=None, levels=()):
        self.inner = inner
        self.loss_fn = loss_fn
        self.report = report
        self.diverged = diverged
        self.watch = watch
        self.levels = tuple(levels)
        self.rtol = inner.rtol
        self.atol = inner.atol
        self.norm = inner.norm

    def wrap(self, direction):
        return eqx.tree_at(lambda c: c.inner, self, self.inner.wrap(direction))

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        t, state = self.inner.init(terms, t0, t1, y0, dt0, args, func, error_order)
        record = None
        if self.watch is not None:
            record = _crossings.init_record(self.levels, *self.watch(t0, y0, args))
        # first report after FIRST_REPORT steps: a solve shorter than that (milliseconds)
        # never pays for a callback; later ones come about every `interval` seconds
        countdown, steps = jnp.asarray(FIRST_REPORT, jnp.int64), jnp.asarray(0, jnp.int64)
        return t, (state, countdown, steps, (jnp.asarray(t), jnp.asarray(True)), record)

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        inner_state, countdown, steps, _, record = state
        out = self.inner.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, inner_state
        )
        keep, next_t0, next_t1, jump, new_inner, result = out
        if self.watch is not None:

            def accepted(rec):
                g1, d1 = self.watch(t1, y1_candidate, args)
                return _crossings.update_record(self.levels, rec, t0, t1, g1, d1)

            record = jax.lax.cond(keep, accepted, lambda rec: rec, record)
        tiny = STALL_ULPS * jnp.finfo(jnp.result_type(next_t0)).eps * jnp.abs(next_t0)
        stalled = (next_t1 - next_t0) < tiny
        blown = keep & self.diverged(y1_candidate)
        result = dfx.RESULTS.where(stalled | blown, dfx.RESULTS.dt_min_reached, result)
        steps = steps + 1
        if self.report:
            countdown = countdown - 1

            def fire(_):
                loss = self.loss_fn(y0, args)
                shape = jax.ShapeDtypeStruct((), jnp.int64)
                return io_callback(_report, shape, t0, loss, steps)

            countdown = jax.lax.cond(countdown <= 0, fire, lambda _: countdown, None)
        new_state = (new_inner, countdown, steps, (jnp.asarray(next_t1), keep), record)
        return keep, next_t0, next_t1, jump, new_state, result
