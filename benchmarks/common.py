"""Problems, the shared save grid, drop-time errors and the timing protocol."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np

import gradflow as gf
from gradflow._flow.options import default_atol

#: Teacher of every deep linear case (PERFORMANCE.md): singular values, sizes.
SINGULAR_VALUES = (5.0, 4.0, 3.0, 2.0, 1.0)
D = 8
WIDTH = 8
#: Number of points of the common log-spaced save grid (spacing 0.9% in t), on which every
#: timed run saves the loss. Drop times are first crossings of the midpoints between plateau
#: levels. A drop can be far sharper than 0.9% of its time (3-layer σ = 1e-4: this grid alone
#: put the Dopri8 reference's drops up to 0.26% off their root-found times), so gradflow and
#: the references are timed by root finding (`gf.Crossings`, SciPy events) and the other
#: methods by linear interpolation on the grid refined around the reference's drops
#: (`refine_grid`), in untimed twin runs.
N_SAVE = 1000
#: Refinement around each reference drop t_d: `REFINE_POINTS` times spaced uniformly over
#: t_d·(1 ± `REFINE_WIDTH`), i.e. 1e-4 relative apart: a method within 2% of the reference is
#: timed to ~1e-4 (the 1% GD criterion is resolved 100×).
REFINE_POINTS = 401
REFINE_WIDTH = 0.02
DATA_SEED = 0
INIT_SEED = 1


def mse_params(params, args):
    """The loss over `(params, (static, data))`, exactly what `gf.flow` integrates."""
    static, data = args
    return gf.losses.mse(eqx.combine(params, static), data)


def quadratic_loss(model, data):
    """The population loss of a quadratic net; the teacher matrix T is `data.x` (`gf.gd`
    needs a dataset with an `x`, so T travels as `gf.Dataset(T, T)`)."""
    return gf.data.quadratic_population_loss(model, data.x)


def quadratic_params(params, args):
    """`quadratic_loss` over `(params, (static, data))`."""
    static, data = args
    return quadratic_loss(eqx.combine(params, static), data)


#: Type III attention case: separate key–query rank-1 linear attention, 3 heads, on the
#: in-context regression task with Λ = diag(1, 0.6, 0.3), context N = 31 (population loss);
#: plateau levels Eq. (19) (`gf.theory.attention_plateau_losses`), plateaus ∝ 1/(λ²σ).
ATTN_EIGENVALUES = (1.0, 0.6, 0.3)
ATTN_CONTEXT = 31


ATTN_TASK = gf.data.InContextTask(ATTN_EIGENVALUES, ATTN_CONTEXT)


def attention_loss(model, data):
    """The in-context population loss of `ATTN_TASK` (`data`, a `gf.Dataset(Λ, Λ)`, is only
    there because `gf.gd` needs a dataset)."""
    return gf.data.in_context_population_loss(model, ATTN_TASK)


def attention_params(params, args):
    static, data = args
    return attention_loss(eqx.combine(params, static), data)


#: `(params, args)` losses by problem kind; each equals the `loss(model, data)` of `LOSSES`.
PARAM_LOSSES = {"deep_linear": mse_params, "relu": mse_params, "quadratic": quadratic_params,
                "quadratic_wide": quadratic_params, "attention": attention_params}  # fmt: skip
LOSSES = {"deep_linear": gf.losses.mse, "relu": gf.losses.mse, "quadratic": quadratic_loss,
          "quadratic_wide": quadratic_loss, "attention": attention_loss}  # fmt: skip

#: 2-layer ReLU case: 1-D data `gf.data.stewart(40)` (Boursier & Flammarion's "Stewart"
#: targets), width 20, hidden bias, i.i.d. N(0, σ²) init.
RELU_POINTS = 40
RELU_WIDTH = 20
#: Type III case: quadratic net of width 4 on the V5 teacher T = diag(2, −1) with Gaussian
#: inputs (population loss); plateau levels 5.5, 4/3, 0 (VALIDATION V5).
QUAD_TEACHER = (2.0, -1.0)
QUAD_WIDTH = 4
QUAD_LEVELS = (5.5, 4.0 / 3.0, 0.0)
#: The wide Type III case: the same teacher padded with zeros to 32 inputs, width 32 (1,056
#: parameters, a gradient ~10 µs instead of ~0.2 µs); same plateau levels (the learned part
#: of M stays on e₁, e₂).
QUAD_WIDE_DIM = 32
QUAD_WIDE_WIDTH = 32


@dataclass
class Problem:
    depth: int
    sigma: float
    t1: float
    model: eqx.Module
    data: object
    params: object
    static: object
    ts: np.ndarray
    levels: np.ndarray | None
    kind: str = "deep_linear"
    #: gradflow's default atol for this init (1e-2 × 10th percentile of |θ0|), given to every
    #: other method too; computed once in `make_problem` (after each row's `jax.clear_caches()`
    #: its percentile recompiled, ~0.35 s, up to ten times per case)
    atol: float | None = None

    @property
    def args(self):
        return (self.static, self.data)

    @property
    def loss(self):
        """`loss(model, data)`, as passed to `gf.flow` / `gf.gd`."""
        return LOSSES[self.kind]

    @property
    def loss_params(self):
        """`loss(params, (static, data))`, for the hand-written competitors."""
        return PARAM_LOSSES[self.kind]

    @property
    def num_params(self) -> int:
        return sum(x.size for x in jax.tree.leaves(self.params))


def make_problem(depth: int, sigma: float, t1: float, kind: str = "deep_linear") -> Problem:
    """The problem of a case. Deep linear and quadratic plateau levels come from theory; the
    ReLU levels (`None` here) are measured on the reference solution by `run_case`."""
    key = jax.random.key(INIT_SEED)
    if kind == "deep_linear":
        data = gf.data.linear_teacher(
            list(SINGULAR_VALUES), in_size=D, out_size=D, key=jax.random.key(DATA_SEED)
        )
        model = gf.models.DeepLinear(D, WIDTH, D, depth, sigma, key=key)
        levels = gf.theory.plateau_levels(np.array(SINGULAR_VALUES))
    elif kind == "relu":
        data = gf.data.stewart(RELU_POINTS, key=jax.random.key(DATA_SEED))
        model = gf.models.TwoLayer(1, RELU_WIDTH, 1, "relu", bias=True, init_scale=sigma,
                                   key=key)  # fmt: skip
        levels = None
    elif kind == "quadratic":
        teacher = np.diag(np.asarray(QUAD_TEACHER))
        data = gf.Dataset(teacher, teacher)
        model = gf.models.TwoLayer(len(QUAD_TEACHER), QUAD_WIDTH, 1, "quadratic",
                                   init_scale=sigma, key=key)  # fmt: skip
        levels = np.asarray(QUAD_LEVELS)
    elif kind == "quadratic_wide":
        teacher = np.zeros((QUAD_WIDE_DIM, QUAD_WIDE_DIM))
        teacher[: len(QUAD_TEACHER), : len(QUAD_TEACHER)] = np.diag(np.asarray(QUAD_TEACHER))
        data = gf.Dataset(teacher, teacher)
        model = gf.models.TwoLayer(QUAD_WIDE_DIM, QUAD_WIDE_WIDTH, 1, "quadratic",
                                   init_scale=sigma, key=key)  # fmt: skip
        levels = np.asarray(QUAD_LEVELS)
    elif kind == "attention":
        cov = np.diag(np.asarray(ATTN_EIGENVALUES))
        data = gf.Dataset(cov, cov)
        model = gf.models.SeparateAttention(len(ATTN_EIGENVALUES), len(ATTN_EIGENVALUES), 1,
                                            sigma, key=key)  # fmt: skip
        # Eq. (19) is in the paper's convention E(y − ŷ)²; gradflow's loss is half of it
        lam = np.asarray(ATTN_EIGENVALUES)
        levels = 0.5 * gf.theory.attention_plateau_losses(lam, ATTN_CONTEXT)
    else:
        raise ValueError(f"unknown problem kind {kind!r}")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    ts = gf.log_grid(t1, N_SAVE)
    atol = float(default_atol(params))
    return Problem(depth, sigma, t1, model, data, params, static, ts, levels, kind, atol)


def refine_grid(problem: Problem, ref_drops) -> Problem:
    """The problem with `REFINE_POINTS` more save times around each finite reference drop.

    Timed runs save on the plain grid (the refinement would add ~2,000 save points, a cost
    that is not the method's); the drop times of grid-read methods come from untimed twin
    runs on the refined one (`deep_linear.run_case`)."""
    extra = [d * (1.0 + np.linspace(-REFINE_WIDTH, REFINE_WIDTH, REFINE_POINTS))
             for d in np.asarray(ref_drops, float) if np.isfinite(d)]  # fmt: skip
    ts = np.unique(np.concatenate([problem.ts, *extra]))
    return dataclasses.replace(problem, ts=ts[(ts >= 0) & (ts <= problem.t1)])


def measured_levels(t, loss) -> np.ndarray:
    """Plateau levels detected on a (reference) loss curve, `gf.analysis.plateaus` without
    predictions; the last level is the final loss."""
    t, loss = np.asarray(t, float), np.asarray(loss, float)
    ok = np.isfinite(t) & np.isfinite(loss)
    table = gf.analysis.plateaus(t=t[ok], loss=loss[ok])
    return np.asarray(table.level, float)


def drop_times(problem: Problem, t, loss) -> np.ndarray:
    """Drop times (first crossings of the level midpoints) via `gf.analysis.plateaus`."""
    if problem.levels is None:
        raise ValueError("the problem's plateau levels are not set (measure them first)")
    t, loss = np.asarray(t, float), np.asarray(loss, float)
    ok = np.isfinite(t) & np.isfinite(loss)
    if ok.sum() < 4:
        return np.full(len(problem.levels) - 1, np.nan)
    table = gf.analysis.plateaus(t=t[ok], loss=loss[ok], levels=problem.levels)
    return np.asarray(table.drop[:-1], float)


def drop_error(drops, ref_drops) -> float:
    """Max relative drop-time error over the drops the reference has (inf if one is missed)."""
    drops, ref = np.asarray(drops, float), np.asarray(ref_drops, float)
    have = np.isfinite(ref)
    if not have.any():
        return float("nan")
    err = np.abs(drops[have] - ref[have]) / ref[have]
    return float(np.inf) if not np.all(np.isfinite(err)) else float(err.max())


def _block(out):
    jax.block_until_ready(jax.tree.leaves(out, is_leaf=lambda x: x is None))
    return out


#: A timed call slower than this (seconds) is the only one (see `timed`). It is judged on
#: the first *timed* call, not on the first call: that one includes the compile (~3 s for
#: gradflow), and judging it made gradflow's millisecond rows single, noisy measurements.
#: `__main__` sets it per mode: 1 s in quick mode, 60 s in full mode.
SLOW_S = 1.0
#: Cheap calls are repeated until they have run this long in total (at most MAX_REPEATS
#: times): the best of many calls is a steadier estimate on a shared, noisy machine. (At 25
#: the progress overhead, a median of 25 paired ratios of ~15-ms calls, read 7–15% from run
#: to run on the same code: 60 rounds narrow that by ~1.5×, for ~10 s of the quick mode.)
MIN_TOTAL_S = 1.0
MAX_REPEATS = 60


def timed(fn, repeats: int = 3, clear: bool = True) -> tuple[object, dict]:
    """First call (compile + run) and the best of >= `repeats` further calls (run only).

    JAX's in-memory compilation caches are cleared before the first call (unless `clear` is
    false) so that every competitor pays (and reports) its own compile, even when an earlier
    case compiled the same shapes. `compile_s` = first call − best further call. Cheap calls
    are repeated more (until `MIN_TOTAL_S`); if the first further call took longer than
    `SLOW_S`, it is the only one. The number of further calls is recorded as `repeats`
    (`timed_group` of one function).
    """
    out, timing = timed_group({"fn": fn}, repeats=repeats, clear=clear)["fn"]
    del timing["interleaved"]
    return out, timing


def timed_group(fns: dict, repeats: int = 3, clear: bool = True) -> dict:
    """`timed` for several functions whose ratios matter, with their timed calls interleaved.

    Caches are cleared once (if `clear`); each function's first call (its own compile + run)
    is made in turn, then rounds of one call of each (every other round in reverse order), so
    that a load spike on the shared machine hits all of them alike. With `repeats=0` only the
    first calls are made. Returns `{name: (output, timing)}`.
    """
    if clear:
        jax.clear_caches()
    outs, first = {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        outs[name] = _block(fn())
        first[name] = time.perf_counter() - t0
    # a member whose first timed call is slow gets no more; the others go on in rounds (so a
    # slow Tsit5 row does not leave gradflow's row beside it timed once)
    limit = dict.fromkeys(fns, MAX_REPEATS)
    times = {name: [] for name in fns}  # by round: paired ratios (`report.paired_ratio`)

    def more(name):
        n = len(times[name])
        return repeats > 0 and n < limit[name] and (n < repeats or sum(times[name]) < MIN_TOTAL_S)

    rounds = 0
    while any(more(name) for name in fns):
        # odd rounds in reverse order: a call right after another one of the same kind runs
        # ~1–5% faster (measured with one function twice), which would bias the paired ratios
        order = list(fns.items()) if rounds % 2 == 0 else list(fns.items())[::-1]
        rounds += 1
        for name, fn in order:
            if not more(name):
                continue
            t0 = time.perf_counter()
            outs[name] = _block(fn())
            dt = time.perf_counter() - t0
            times[name].append(dt)
            if len(times[name]) == 1 and dt > SLOW_S:
                limit[name] = 1
    best = {name: min(ts, default=None) for name, ts in times.items()}
    return {
        name: (
            outs[name],
            {
                "first_s": first[name],
                "run_s": best[name],
                "compile_s": None if best[name] is None else max(first[name] - best[name], 0.0),
                "repeats": len(times[name]),
                "run_times": times[name],
                "interleaved": list(fns),
            },
        )  # fmt: skip
        for name in fns
    }
