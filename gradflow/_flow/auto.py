r"""Automatic switching between explicit (Tsit5) and stiff stepping (RosW or RKC).

Small-init gradient flow starts non-stiff — the first plateau and escape are resolved best by
a high-order explicit method — and becomes stiff after the first escape: the learned
directions have curvature $\lambda_{max}$ far above the rate of the next slow escape, and an
explicit method is then held at $h \approx 3.5/\lambda_{max}$ on every later plateau and in
the converged tail (PERFORMANCE.md). Like LSODA, `Auto` watches for this and switches:

1. In explicit mode, every `check_every` steps it estimates the spectral radius $\rho$ of the
   Jacobian $-\nabla^2 L$ with a few warm-started power iterations on Jacobian-vector products
   (the estimate RKC keeps anyway), in a `lax.cond` of its own so that the other steps run
   none of it. If $h\rho >$ `to_stiff` on `patience` consecutive checks,
   the step is limited by stability rather than accuracy (Tsit5 is stable up to
   $h\rho \approx 3.5$ on the negative real axis): switch to the stiff method, by model size:
   - at most `dense_max` (64) parameters: `dense`, by default `RosW()` (Rosenbrock-W, third
     order, linearly implicit in every direction of one dense Hessian eigendecomposition,
     reused for 200 steps). The alternative `ExpRB()` (exponential Rosenbrock, fourth order,
     a fresh Hessian and `eigh` every step) takes fewer steps but costs more: on the Type III
     benchmark cases (quadratic net, 12 parameters; attention, 21) 351 and 350 steps against
     RosW's 573 and 595, but 1.02× and 1.48× RosW's wall time (paired medians over 40
     interleaved calls; an ExpRB step with its Hessian and `eigh` costs ~16 µs at P = 12
     and ~58 µs at P = 21), and twice the work once the Hessian's $P$ products are counted
     (quadratic net: 1,567 gradients and 2,239 Hessian-vector products against RosW's
     2,660 and 123), which is what counts when a gradient is expensive (much data). Both
     take far fewer steps than RKC (1,374 on the quadratic net);
   - from `rosw_min` (129) to `rosw_max` (256): `rosw`, `RosW(rank=64)` (W on the 64
     stiffest directions): on the 3-layer linear net (192 parameters) at init 1e-6 it takes
     0.28 s where RKC takes 1.8 s;
   - otherwise, and from 65 to 128 parameters, RKC (stabilised explicit, second order, no
     linear algebra). On the 2-layer linear net (128 parameters, stiff only for ~10 steps
     in the converged tail) a RosW's first `eigh` and the decomposition carried through
     every explicit step were not paid back.
2. In stiff mode, if RKC's steps satisfy $1.54\,h\hat\rho <$ `to_explicit` (two
   stages: the problem is no longer stiff at the accuracy-limited step), or RosW's (ExpRB's)
   $h\rho <$ `RosW.explicit_below`, on `patience` consecutive steps, switch back to Tsit5,
   whose fifth order then takes far longer steps.

0. Before either, a tiny init's first plateau (the field linear about the init, at most
   `linear_max` parameters) is integrated in exact exponential steps on the Jacobian at the
   init (`linear_start`, see `linear.py`), and handed to Tsit5 where it turns nonlinear.

All the methods are FSAL and share one slope: the stiff method's state holds $F(y_0)$, every
mode keeps it current, and Tsit5 (its stages written out, `tsit5.py`) starts from it, so a
switch costs nothing. Dense output is cubic Hermite for both (from each step's end-point
slopes), so saving and event location are unaffected by the mode (with a linear start
possible, every step's dense output is a polynomial of degree 10: the same Hermite, bit for
bit, on Tsit5 and stiff steps, the exact exponential solution interpolated at Chebyshev
nodes on linear steps). The controller sees one error order (`error_order`); the step-size
ratio adapts within a few steps after a switch.

Under `jax.vmap` the mode is per member and `lax.cond` becomes a select that evaluates both
branches: for large sweeps of one kind of problem, pass `solver="tsit5"` or `"rkc"`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp

from . import linear as _linear
from .exprb import ExpRB
from .rkc import RKC, fsal_slope, power_iteration
from .rosw import RosW
from .sliding import project_kink_error
from .traced import traced_once
from .tsit5 import tsit5_step

EXPLICIT, STIFF, LINEAR = 0, 1, 2


class Auto(dfx.AbstractAdaptiveSolver):
    """Tsit5 while the flow is not stiff; RosW or RKC while it is, by model size
    (see the module docstring).

    **Arguments:**

    - `stiff`: the stiff solver (default `RKC(safety=1.0)`: the redo on a stale ρ (see `RKC`)
      guards the stage count, and 10% fewer stiff-mode evaluations on the 3-layer cases).
    - `dense`: the stiff solver for at most `dense_max` parameters (default `RosW()`, every
      direction in $W$; `ExpRB()`: fewer steps, more time, see the module docstring; `None`:
      use `stiff`).
    - `dense_max`: largest parameter count for `dense` (default 64).
    - `rosw`: the stiff solver from `rosw_min` to `rosw_max` parameters (default
      `RosW(rank=64)`: $W$ on the 64 stiffest directions; `None`: use `stiff`).
    - `rosw_min`, `rosw_max`: its parameter counts (default 129 to 256). Above 256 a dense
      Hessian's `eigh` (2 ms at 192) grows as $P^3$. Below 129 (2-layer linear benchmark, 128
      parameters, stiff for ~10 steps in the converged tail) its first `eigh` and the
      decomposition carried through every explicit step were not paid back: 25–50% slower
      than RKC, and LSODA's margin there fell from 10.7× to 7.3×.
    - `check_every`: explicit steps between stiffness checks (default 10).
    - `to_stiff`: switch to the stiff method when $h\\rho$ exceeds this (default 2.5).
    - `to_explicit`: switch back when $1.54\\,h\\hat\\rho$ falls below this (default 0.5).
      RKC's steps are shortened by `stiff_error_scale`, so this threshold must be low: on
      the 3-layer σ = 1e-3 benchmark case, with the scale at 15, 0.75 made the modes
      flip-flop (512 switches, 6× the steps) and 0.5 does not (9 switches).
    - `patience`: consecutive confirmations needed for a switch (default 3).
    - `stiff_error_scale`: factor on RKC's error estimate (default 15; not applied to
      RosW and ExpRB, which have their own), i.e. RKC's tolerances are 15× tighter than
      Tsit5's. RKC is second order: on a later plateau its accuracy-limited steps shift the
      next drop in proportion to h². Root-found drop-time errors on the 3-layer linear benchmark
      cases at scale 1 / 15 / 30: σ = 1e-3 2.9e-4 / 5.8e-5 / 3.7e-5 (wall 0.063 / 0.088 /
      0.100 s); σ = 1e-4 3.4e-4 / 6.8e-5 / 4.4e-5 (0.12 / 0.18 / 0.63 s: at 30 the modes
      switch far more often); σ = 1e-6 – / 1.2e-4 / 9.5e-5 (1.55 / 1.58 s).
    - `sliding`: in explicit mode, do not control the error along the jump of an attracting
      kink (a ReLU kink held at a data point; `gradflow._flow.sliding`), default `True`.
    - `sliding_max_h_rho`: only while $h\\rho$ is below this (default 2.0, inside Tsit5's
      stability interval $h\\lambda < 3.5$).
    - `sliding_directions`: kinks handled per step (default 2).
    - `explicit_rms`: until the first stiff phase, judge Tsit5's error in the RMS norm (as
      `solver="tsit5"` does) instead of the max norm (default `True`). The max norm keeps
      RKC's long steps honest in the few tiny weights that grow on a later plateau; before
      any stiffness it only costs steps (2-layer ReLU benchmark 441 → 229, 2-layer linear
      σ = 1e-9 364 → 267). After the first stiff phase both modes use the max norm: judging
      errors differently in the two modes made them flip-flop (3-layer: 272 switches). Needs
      `rtol`/`atol`, as below.
    - `rms_cap`: that RMS norm is at least the max norm over `rms_cap` (default 10): one
      component may be at most 10× over its tolerance. Over P components the RMS dilutes a
      few components' error by up to $\\sqrt P$, and on a Type III escape only a few weights
      grow: on the 1,056-parameter quadratic benchmark case the first drop came 9.9e-5
      early with the plain RMS norm, 6.9e-6 with the cap (2.9e-5 overall, 1,325 steps
      instead of 1,357). For P ≤ 100 the cap can never bind ($\\mathrm{rms} \\ge
      \\max/\\sqrt P$); the 2-layer linear cases (P = 128) take the same steps. `None`: off.
    - `stiff_atol_factor`: in stiff mode, judge RKC's error (not RosW's or ExpRB's) as if
      atol were this times smaller (default 0.1); needs `rtol`/`atol`, which
      `gf.solve_flow` fills in from its default controller (with your own controller, RKC's
      error is passed on unchanged).
    - `linear_start`: start in exponential steps on the Jacobian at the init while the
      flow is linear there (default `True`; `gradflow._flow.linear`): a tiny init's first
      plateau in a few exact steps instead of $\\propto \\log(1/\\sigma)$ of them. 2-layer
      linear benchmark net at init 1e-12: 1,568 instead of 1,994 gradients, 280 instead of
      338 steps, drop times 8e-7 instead of 2e-6 off. The wall time is unchanged (±5%),
      also on 4,096 samples, where a gradient costs ~0.3 ms: the Hessian at the init (128
      Hessian-vector products), its `eigh` and the linear steps cost what the saved Tsit5
      steps did. Needs `rtol`/`atol`, as above.
    - `linear_max`: largest parameter count for it (default 256: the Hessian and `eigh`
      at the init, and a $P \\times P$ product per linear step).
    - `linear_growth`: use it only if the field is linear at the init to
      rtol / `linear_growth`² (default 1e4): then it stays linear while the weights grow by
      about this factor, which pays for the `eigh` (measured on that net: at init 1e-6 the
      start would end after a 300-fold growth and cost 10% more steps; it is not used).
    - `linear_exit`: hand over to Tsit5 once the linear steps no longer grow and
      $h\\max|\\lambda| <$ this (default 1.0; Tsit5's steps on the same growth are
      $h\\lambda \\approx 0.2$). Against 0.5: fewer or as many steps on all we measured
      (2-layer linear benchmark net at 1e-9 / 1e-12: 248 / 280 instead of 252 / 297; the
      3-mode test net: 87 / 79 instead of 90 / 81; ReLU: the same); 0.25 and 2.0 took more.
    - `linear_below`: `gf.solve_flow` compiles the linear start in only if the largest
      initial |θ| is at most this (default 1e-4; concrete parameters only): from a larger
      init it would not be used (2-layer net at init 1e-3: linear while the weights grow
      ~3×), and it costs ~0.5 s of compile time.
    """

    stiff: RKC = RKC(safety=1.0)
    dense: RosW | ExpRB | None = RosW()
    dense_max: int = 64
    rosw: RosW | None = RosW(rank=64)
    rosw_min: int = 129
    rosw_max: int = 256
    check_every: int = 10
    to_stiff: float = 2.5
    to_explicit: float = 0.5
    patience: int = 3
    stiff_error_scale: float = 15.0
    sliding: bool = True
    sliding_max_h_rho: float = 2.0
    sliding_directions: int = 2
    stiff_atol_factor: float = 0.1
    explicit_rms: bool = True
    rms_cap: float | None = 10.0
    linear_start: bool = True
    linear_max: int = 256
    linear_growth: float = 1e4
    linear_exit: float = 1.0
    linear_below: float = 1e-4
    rtol: float | None = None
    atol: jax.Array | float | None = None

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., _linear.Interpolation]] = _linear.Interpolation

    def __check_init__(self):
        if not (isinstance(self.linear_growth, int | float) and self.linear_growth > 1):
            raise ValueError(
                f"Auto(linear_growth={self.linear_growth!r}): must be a number > 1 (the growth "
                "of the weights from the init for which the linear start pays; default 1e4), "
                "or pass linear_start=False."
            )
        if not self.linear_below >= 0:
            raise ValueError(
                f"Auto(linear_below={self.linear_below!r}): must be >= 0 (default 1e-4)."
            )
        if not self.linear_exit > 0:
            raise ValueError(f"Auto(linear_exit={self.linear_exit!r}): must be > 0 (default 1.0).")

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    def _stiff(self, y) -> RKC | ExpRB | RosW:
        """The stiff method for parameters `y` (static: it depends on their size only)."""
        size = _size(y)
        if self.dense is not None and size <= self.dense_max:
            return self.dense
        if self.rosw is not None and self.rosw_min <= size <= self.rosw_max:
            return self.rosw
        return self.stiff

    def _linear_on(self, y) -> bool:
        """Whether the linear start is considered (static: by size, and it needs the
        tolerances; see `linear.py`)."""
        return self.linear_start and self.atol is not None and _size(y) <= self.linear_max

    def init(self, terms, t0, t1, y0, args):
        st_state = self._stiff(y0).init(terms, t0, t1, y0, args)
        i32 = lambda n: jnp.asarray(n, jnp.int32)
        size, dtype = _size(y0), jnp.result_type(*jax.tree.leaves(y0))
        # (the slope at y0 is the stiff method's, counted there; Tsit5 reuses it)
        mode, n_vf, n_jvp = i32(EXPLICIT), i32(0), i32(0)
        if self._linear_on(y0):
            # st_state[0]: every stiff method's slope at y0
            max_defect = self.rtol / self.linear_growth**2
            vecs, lam, on = _linear.start(terms, t0, y0, args, st_state[0], max_defect)
            mode = jnp.where(on, LINEAR, EXPLICIT).astype(jnp.int32)
            n_vf, n_jvp = n_vf + 2, jnp.where(on, size, 0).astype(jnp.int32)
        else:  # no linear start: empty, so that the dense output is the plain Hermite
            vecs, lam = jnp.zeros((size, 0), dtype), jnp.zeros((0,), dtype)
        counts = {
            "num_switches": i32(0),
            "num_stiff_steps": i32(0),
            "num_explicit_steps": i32(0),
            "num_linear_steps": i32(0),
            "num_vf": n_vf,
            "num_jvp": n_jvp,
            "num_sliding_steps": i32(0),
        }
        lin_state = (vecs, lam, jnp.zeros((), dtype))  # J₀'s eigenpairs, last linear step
        # () where diffrax's Tsit5 state was: Tsit5 keeps no state of its own here
        return mode, (), st_state, i32(0), i32(0), counts, lin_state

    @traced_once  # (diffrax traces `step` three times: `traced.py`)
    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        mode, _, st_state, streak, age, counts, lin_state = solver_state
        vecs, lam, h_last = lin_state  # (vecs, lam: read only, outside the branches)
        h = t1 - t0
        stiff = self._stiff(y0)
        linear_on = lam.shape[0] > 0  # static

        def slope():
            # F(y0): every mode keeps it current in the stiff method's state (FSAL); after a
            # jump (an event that changed y) it is evaluated afresh
            return fsal_slope(terms, t0, y0, args, st_state[0], made_jump)

        def as_dense(d):
            # with a linear start every mode's dense output is a polynomial of degree 10
            if not linear_on:
                return d
            return dict(coeffs=_linear.hermite_coeffs(d["y0"], d["y1"], d["k0"], d["k1"]))

        def explicit_step(_):
            # Every `check_every` steps, the stiffness check at y0: power iterations from the
            # last vector (warm start), and the streak of stiff checks. In a `lax.cond` of its
            # own, so that the other steps run none of it. (Under vmap the cond is a select
            # that runs both branches: the count stays dynamic, 0 where `check` is False, so
            # that the iterations still run on check steps only.)
            check = age + 1 >= self.check_every

            def checked(_):
                n_it = jnp.where(check, stiff.power_iters, 0).astype(jnp.int32)
                rho_new, v = power_iteration(terms, t0, y0, args, st_state[2], n_it)
                rho = jnp.maximum(rho_new, 0.0)
                new_streak = jnp.where(jnp.abs(h) * rho > self.to_stiff, streak + 1, 0)
                return rho, v, new_streak.astype(streak.dtype), n_it

            def unchecked(_):
                return st_state[1], st_state[2], streak, jnp.asarray(0, jnp.int32)

            rho, v, new_streak, n_it = jax.lax.cond(check, checked, unchecked, None)
            # Tsit5, written out (`tsit5.py`), from the slope every mode keeps current
            y1, err, f1, k = tsit5_step(terms, t0, t1, y0, args, slope())
            k0 = jax.tree.map(lambda x: x[0], k)
            k1 = jax.tree.map(lambda x: x[-1], k)
            slide = jnp.asarray(0, jnp.int32)
            if self.sliding:
                err, slide = project_kink_error(
                    err, k, y0, y1, h, rho, self.sliding_max_h_rho, self.sliding_directions
                )
                slide = jnp.minimum(slide, 1)
            if self.explicit_rms and self.atol is not None:
                # RMS until the first stiff phase, the max norm from then on (see `Auto`)
                first = counts["num_switches"] == 0
                rms = self._rms_equivalent(err, y0, y1)
                err = jax.tree.map(lambda a, b: jnp.where(first, a, b), rms, err)
            switch = new_streak >= self.patience
            # keep the stiff method's slope and spectral-radius estimate current (FSAL, warm
            # start)
            st_new = stiff.resync(st_state, f1, rho, v)
            new_mode = jnp.where(switch, STIFF, EXPLICIT)
            out_streak = jnp.where(switch, 0, new_streak)
            out_age = jnp.where(check, 0, age + 1)
            dense = as_dense(dict(y0=y0, y1=y1, k0=k0, k1=k1))
            work = (jnp.asarray(6, jnp.int32), n_it)  # Tsit5 is FSAL: 6 new
            out = (new_mode, st_new, out_streak, out_age, h_last)
            return y1, err, dense, out, dfx.RESULTS.successful, work + (slide.astype(jnp.int32),)

        def stiff_step(_):
            y1, err, dense, st_new, res = stiff.step(terms, t0, t1, y0, args, st_state, made_jump)
            if isinstance(stiff, RKC):  # second order: judged at tighter tolerances
                err = jax.tree.map(lambda e: self.stiff_error_scale * e, err)
                if self.atol is not None and self.stiff_atol_factor != 1.0:
                    err = self._tighter_atol(err, y0, y1)
            easy = stiff.easy(h, st_new, self.to_explicit)
            new_streak = jnp.where(easy, streak + 1, 0)
            switch = new_streak >= self.patience
            new_mode = jnp.where(switch, EXPLICIT, STIFF)
            out_streak = jnp.where(switch, 0, new_streak)
            work = (jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32))  # counted by RKC
            work = work + (jnp.asarray(0, jnp.int32),)
            dense = as_dense(dense)
            out = (new_mode, st_new, out_streak, age, h_last)
            return y1, err, dense, out, res, work

        def linear_step(_):
            # exponential Euler on the init's Jacobian (`linear.py`); leaves for Tsit5 once
            # its (accepted) steps are short and no longer growing
            y1, f1, err, coeffs = _linear.step(
                terms, t0, t1, y0, args, slope(), vecs, lam, self._tol
            )
            hh = jnp.abs(h)
            short = hh * jnp.max(jnp.abs(lam)) < self.linear_exit
            leave = short & (hh <= h_last)
            st_new = stiff.resync(st_state, f1, st_state[1], st_state[2])
            new_mode = jnp.where(leave, EXPLICIT, LINEAR)
            dense = dict(coeffs=coeffs)
            out = (new_mode, st_new, streak, age, hh.astype(h_last.dtype))
            work = tuple(jnp.asarray(n, jnp.int32) for n in (1, 0, 0))
            return y1, err, dense, out, dfx.RESULTS.successful, work

        if linear_on:
            branches = (explicit_step, stiff_step, linear_step)
            outs = jax.lax.switch(mode, branches, None)
        else:
            outs = jax.lax.cond(mode == EXPLICIT, explicit_step, stiff_step, None)
        y1, err, dense, out, res, (n_vf, n_jvp, n_sl) = outs
        new_mode, st_new, streak, age, h_last = out
        counts = {
            # (the one-way exit of the linear start is no switch: in particular Tsit5 keeps
            # its RMS norm, `explicit_rms`, until the first stiff phase)
            "num_switches": counts["num_switches"] + ((new_mode != mode) & (mode != LINEAR)),
            "num_stiff_steps": counts["num_stiff_steps"] + (mode == STIFF),
            "num_explicit_steps": counts["num_explicit_steps"] + (mode == EXPLICIT),
            "num_linear_steps": counts["num_linear_steps"] + (mode == LINEAR),
            "num_vf": counts["num_vf"] + n_vf,
            "num_jvp": counts["num_jvp"] + n_jvp,
            "num_sliding_steps": counts["num_sliding_steps"] + n_sl,
        }
        lin_state = (vecs, lam, h_last)
        return y1, err, dense, (new_mode, (), st_new, streak, age, counts, lin_state), res

    def _tol(self, y0, y1):
        """The controller's per-component tolerance, atol + rtol·max(|y0|, |y1|)."""
        return jax.tree.map(
            lambda a, b: self.atol + self.rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y0, y1
        )

    def _rms_equivalent(self, err, y0, y1):
        """An error whose max norm (the controller's) is the RMS norm of `err` (scaled by
        the controller's tolerances, `_tol`)."""
        tol = self._tol(y0, y1)
        ratios = [e / s for e, s in zip(*map(jax.tree.leaves, (err, tol)))]
        sq = sum(jnp.sum(jnp.square(r)) for r in ratios)
        rms = jnp.sqrt(sq / max(sum(x.size for x in jax.tree.leaves(err)), 1))
        if self.rms_cap is not None:
            worst = jnp.max(jnp.stack([jnp.max(jnp.abs(r)) for r in ratios]))
            rms = jnp.maximum(rms, worst / self.rms_cap)
        return jax.tree.map(lambda s: (rms * s).astype(s.dtype), tol)

    def _tighter_atol(self, err, y0, y1):
        """RKC's error as the controller would judge it with atol × `stiff_atol_factor`.

        RKC's steps are accuracy-limited (Tsit5's, in a stiff phase, are stability-limited and
        far more accurate than asked). On a later plateau the next direction to grow is a few
        tiny weights whose tolerance is all atol, about 1e-3 of their size: RKC's second-order
        error accumulates there over hundreds of long steps and delays the next drop
        (quadratic net, σ = 1e-4: 0.9% at atol, 6e-6 at atol/10 for 1.3× the steps; 3-layer
        linear, σ = 1e-3: 9e-4 → 4e-4).
        """
        rtol, atol, f = self.rtol, self.atol, self.stiff_atol_factor

        def leaf(e, a, b):
            m = rtol * jnp.maximum(jnp.abs(a), jnp.abs(b))
            return e * ((atol + m) / (f * atol + m)).astype(e.dtype)

        return jax.tree.map(leaf, err, y0, y1)

    def work(self, solver_state) -> dict:
        """Vector-field evaluations and JVPs of the accepted steps, mode statistics, and the
        stiff method's own counts (`num_hessians` of ExpRB and RosW; RKC's `num_redo`,
        `num_stages_max`)."""
        counts = solver_state[5]
        stiff = self._stiff(solver_state[2][0]).work(solver_state[2])
        return {
            **{k: v for k, v in stiff.items() if k not in ("num_vf", "num_jvp")},
            "num_vf": counts["num_vf"] + stiff["num_vf"],
            "num_jvp": counts["num_jvp"] + stiff["num_jvp"],
            "num_switches": counts["num_switches"],
            "num_stiff_steps": counts["num_stiff_steps"],
            "num_linear_steps": counts["num_linear_steps"],
            "num_sliding_steps": counts["num_sliding_steps"],
        }

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


def _size(y) -> int:
    return sum(x.size for x in jax.tree.leaves(y))
