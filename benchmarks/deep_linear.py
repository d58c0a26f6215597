"""Deep linear cases (PERFORMANCE.md): d = 8, width 8, teacher (5, 4, 3, 2, 1), whitened inputs.

A case runs, in one process and one after the other: the reference, gradflow, the same diffrax
solve by hand, Kvaerno5 (small cases only), SciPy LSODA and BDF, GD at lr = 1/λ_max and at the
largest lr of a short search whose drop times are within 1% of the reference, torchdiffeq.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field

import numpy as np

import gradflow as gf

from . import competitors as comp
from . import references as refs
from .common import (
    Problem,
    drop_error,
    drop_times,
    make_problem,
    refine_grid,
    timed_group,
)

#: GD learning rates searched, as multiples of 1/λ_max (largest first). Rates above 1/λ_max
#: (up to 1.9, inside the stability limit 2/λ_max at the minimum) count: on the 3-layer and
#: Type III cases GD at 1.9/λ_max stays stable and within 1% (0.02–0.5%).
GD_FACTORS = (1.9, 1.5, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
#: Largest accepted max relative drop-time error for "GD at 1%".
GD_TOL = 0.01
#: Geometric bisections between the first factor within GD_TOL and the one before it (the
#: grid is 2–2.5× coarse, and GD's drop-time error is first order in lr: without them the
#: 2-layer cases' "GD at 1%" ran at 0.02/λ_max with 0.49% error, half the rate that reaches
#: 1%). Four halve the bracket's log-width each: within 6% of the 1% rate.
GD_REFINE = 4
#: A grid factor is skipped (counted as failing) when the first-order error model, scaled from
#: the last failing trial (err ∝ c), puts it above this many times GD_TOL: on the 2-layer
#: cases the trials at 1.5, 1, 0.5 and 0.2 (errors ~32%, 21%, 10%, 4%) cost ~0.5 s each
#: (a compile per rate) and never decided anything.
GD_SKIP_ABOVE = 3.0

ALL = ("gradflow", "diffrax_tsit5", "diffrax_kvaerno5", "scipy_lsoda", "scipy_bdf", "gd",
       "torchdiffeq", "progress")  # fmt: skip


#: left out of quick mode's dl2_s1e-6 (run there in full mode): quick mode must stay under 5
#: minutes, and they run on dl2_s1e-3 and dl2_s1e-9
QUICK_SKIP_DL2_6 = ("diffrax_kvaerno5", "scipy_bdf", "torchdiffeq")
#: the progress row (a compile of ~3.5 s) in quick mode only on dl2_s1e-9 and dl3_s1e-3 (the
#: quick mode took 284–308 s with it on four cases); full mode adds dl2_s1e-3 and dl2_s1e-6
NO_PROGRESS = ("progress",)


@dataclass
class Case:
    name: str
    depth: int
    sigma: float
    t1: float
    modes: tuple[str, ...] = ("quick", "full")
    methods: tuple[str, ...] = ALL
    reference: str = "dopri8"
    kvaerno_max_steps: int = 20_000
    kind: str = "deep_linear"
    #: learning rate of a "gd" reference
    ref_lr: float | None = None
    notes: list[str] = field(default_factory=list)


CASES = [
    Case("dl2_s1e-3", 2, 1e-3, 60.0, methods=tuple(m for m in ALL if m not in NO_PROGRESS)),
    Case(
        "dl2_s1e-6",
        2,
        1e-6,
        60.0,
        methods=tuple(m for m in ALL if m not in QUICK_SKIP_DL2_6 + NO_PROGRESS),
    ),
    Case("dl2_s1e-9", 2, 1e-9, 60.0, methods=tuple(m for m in ALL if m != "diffrax_kvaerno5")),
    # for the steps target only (σ = 1e-12 against 1e-3): gradflow alone (quick-mode time)
    Case("dl2_s1e-12", 2, 1e-12, 60.0, methods=("gradflow",)),
    Case(
        "dl3_s1e-3",
        3,
        1e-3,
        1150.0,
        methods=tuple(m for m in ALL if m not in ("diffrax_kvaerno5", "torchdiffeq")),
    ),
    # (Tsit5, by hand and gradflow's: ~3 s per call, two calls each, in full mode only)
    Case("dl3_s1e-4", 3, 1e-4, 11500.0, methods=("gradflow", "gd")),  # fmt: skip
    # full mode only: Tsit5 needs ~8e6 steps here (PERFORMANCE.md); the Dopri8 reference would
    # need more, so the reference is LSODA at rtol 1e-10 with the JAX Hessian as Jacobian.
    Case(
        "dl3_s1e-6",
        3,
        1e-6,
        1.15e6,
        modes=("full",),
        reference="lsoda",
        methods=(
            "gradflow",
            "diffrax_tsit5",
            "diffrax_kvaerno5",
            "scipy_lsoda",
            "scipy_bdf",
            "gd",
        ),
        kvaerno_max_steps=200_000,
    ),  # fmt: skip
    # 2-layer ReLU on 1-D data (the non-smooth case): kinks cross data points and
    # tiny units slide along them. The reference is small-lr GD (a Dopri8 reference would
    # chatter at rtol 1e-12); SciPy's implicit methods and Kvaerno5 stall on the kinks
    # (PERFORMANCE.md), torchdiffeq has no ReLU port here.
    Case(
        "relu2_s1e-3",
        2,
        1e-3,
        250.0,
        kind="relu",
        reference="gd",
        ref_lr=2.5e-4,
        methods=("gradflow", "diffrax_tsit5", "gd"),
    ),  # fmt: skip
    # Type III: quadratic net on the V5 teacher diag(2, −1) (population loss). Plateaus last
    # ∝ 1/σ (drops at t ≈ 1955 and 3339 here); T covers both and part of the stiff tail.
    Case(
        "quad_s1e-4",
        2,
        1e-4,
        5000.0,
        kind="quadratic",
        methods=("gradflow", "diffrax_tsit5", "scipy_lsoda", "gd"),
    ),  # fmt: skip
    # Type III at 1,056 parameters (the teacher padded to 32 inputs, width 32): a gradient
    # costs ~10 µs, so per-step overheads no longer decide the ratio to GD (drops at t ≈ 616
    # and 1868). Quick mode runs gradflow and GD only (Tsit5 alone would need ~31,000 steps
    # of 6 gradients, 3.4 s); full mode adds Tsit5 (by hand and gradflow's) and LSODA.
    Case(
        "quad32_s1e-4",
        2,
        1e-4,
        5000.0,
        kind="quadratic_wide",
        methods=("gradflow", "gd"),
    ),  # fmt: skip
    # Type III, separate key–query attention (3 heads, rank 1, random init): the first two
    # heads escape at t ≈ 1.3e4 and 3.2e4; T = 6e4 (the third drop, at ≈ 1.2e5, is outside).
    Case(
        "attn_s1e-4",
        2,
        1e-4,
        6e4,
        kind="attention",
        methods=("gradflow", "diffrax_tsit5", "scipy_lsoda", "gd"),
    ),  # fmt: skip
]
# Full mode adds the progress row on 2-layer σ = 1e-3 and 1e-6, Kvaerno5 on 2-layer σ = 1e-9
# and 3-layer σ = 1e-3, torchdiffeq on the 3-layer σ = 1e-3 case (≈ 40 s per call there: too
# slow for the quick budget), and Tsit5 on the 3-layer σ = 1e-4 case (the quick mode took
# 290–308 s with it).
FULL_EXTRA = {"dl2_s1e-3": NO_PROGRESS,
              "dl2_s1e-6": QUICK_SKIP_DL2_6 + NO_PROGRESS,
              "dl2_s1e-9": ("diffrax_kvaerno5",),
              "dl3_s1e-4": ("diffrax_tsit5",),
              "dl3_s1e-3": ("diffrax_kvaerno5", "torchdiffeq"),
              "quad32_s1e-4": ("diffrax_tsit5", "scipy_lsoda")}  # fmt: skip


def methods_for(case: Case, mode: str) -> tuple[str, ...]:
    extra = FULL_EXTRA.get(case.name, ()) if mode == "full" else ()
    return case.methods + extra


def _finish(row: dict, name: str, problem: Problem, ref_drops, twin=None) -> dict:
    """The row of a timed run; its drop times from `twin`, an untimed run of the same method
    on the refined grid (`fine`), when given. Without one (GD's rows bring theirs from the
    search, which ran on the refined grid) they are read off the timed run's grid."""
    drops = drop_times(problem, row.pop("t"), row.pop("loss"))
    row.pop("params", None)
    row["method"] = name
    row["drops_plain_grid"] = [float(x) for x in drops]
    row["drops_by"] = "plain grid"
    if twin is not None:
        drops = drop_times(problem, twin["t"], twin["loss"])
        row["drops_by"] = "refined grid"
    row["drops"] = [float(x) for x in drops]
    row["drop_err"] = drop_error(drops, ref_drops)
    return row


def _gd_search(problem: Problem, fine: Problem, ref_drops, lam: float, log):
    """The largest c/λ_max within GD_TOL: the first c in GD_FACTORS that is (skipping those
    the first-order error model puts above GD_SKIP_ABOVE·GD_TOL), refined by GD_REFINE
    geometric bisections towards the factor before it. Untimed runs on the refined
    grid `fine`; returns `(chosen c or None, search log, {c: run})` (the timed runs, on the
    plain grid, take their drop times from the search run at the same rate: GD is
    deterministic)."""
    search = []
    chosen = None
    by_c = {}

    def trial(c):
        r = comp.run_gd(fine, c / lam, repeats=0)
        by_c[c] = r
        err = drop_error(drop_times(problem, r["t"], r["loss"]), ref_drops)
        search.append({"c": c, "lr": c / lam, "drop_err": err, "num_steps": r["num_steps"]})
        log(f"    gd search c={c:<5.4g} lr={c / lam:.4g} steps={r['num_steps']} err={err:.3%}")
        return err

    bad = None
    last = None  # (c, err) of the last failing trial with a finite error
    for c in GD_FACTORS:
        predicted = None if last is None else last[1] * c / last[0]  # err ∝ c
        if predicted is not None and predicted > GD_SKIP_ABOVE * GD_TOL:
            search.append({"c": c, "lr": c / lam, "skipped": True, "predicted_err": predicted})
            log(f"    gd search c={c:<5.4g} skipped (predicted err {predicted:.1%})")
            bad = c
            continue
        err = trial(c)
        if err <= GD_TOL:
            chosen = c
            break
        if np.isnan(err):  # no reference drop inside [0, T] (e.g. a tiny smoke-test T)
            break
        # (inf: a drop missed, e.g. a rate that diverges: try the next, smaller one)
        bad = c
        if np.isfinite(err):
            last = (c, err)
    if chosen is not None and bad is not None:
        for _ in range(GD_REFINE):
            mid = float(np.sqrt(chosen * bad))
            if trial(mid) <= GD_TOL:
                chosen = mid
            else:
                bad = mid
    if 1.0 not in by_c:
        by_c[1.0] = comp.run_gd(fine, 1.0 / lam, repeats=0)
    return chosen, search, by_c


def _gd_rows(problem, ref_drops, lam, chosen, search, by_c, timed_rows) -> list[dict]:
    """The GD rows from their timed runs (`timed_rows[c]`, c = 1 and `chosen`)."""
    row = _finish(timed_rows[1.0], "gd_lr_1/lmax", problem, ref_drops, by_c[1.0])
    row["c"] = 1.0
    rows = [row]
    if chosen is None:
        rows.append({"method": "gd_1pct", "status": "not_found", "c": None, "search": search,
                     "note": f"no c in {GD_FACTORS} reached {GD_TOL:.0%}"})  # fmt: skip
    elif chosen == 1.0:
        rows.append(dict(row, method="gd_1pct", search=search, note="same run as gd_lr_1/lmax"))
    else:
        r = _finish(timed_rows[chosen], "gd_1pct", problem, ref_drops, by_c[chosen])
        r["c"] = chosen
        r["search"] = search
        rows.append(r)
    return rows


def _reference(case: Case, problem: Problem, cache: dict | None, need_lambda: bool) -> dict:
    """The reference's summary (drops, final loss, steps, status, seconds; λ_max at its final
    parameters if `need_lambda`), from `cache` (`references.py`) when it has the entry, else
    computed (and added to `cache`). Restores `problem.levels` measured on a GD reference."""
    key = refs.key(case, problem)
    entry = None if cache is None else cache.get(key)
    if entry is not None and (entry.get("lambda_max") is not None or not need_lambda):
        if entry.get("levels") is not None and problem.levels is None:
            problem.levels = np.asarray(entry["levels"], float)
        return dict(entry, cached=True)
    t0 = time.perf_counter()
    ref = comp.reference(problem, case.reference, lr=case.ref_lr)
    seconds = time.perf_counter() - t0
    drops = ref["drops"] if "drops" in ref else drop_times(problem, ref["t"], ref["loss"])
    entry = {
        "drops": [float(x) for x in np.asarray(drops, float)],
        "final_loss": ref["final_loss"], "num_steps": ref["num_steps"],
        "status": ref["status"], "seconds": seconds,
        "levels": None if case.reference != "gd" else [float(x) for x in problem.levels],
        "lambda_max": comp.lambda_max(problem, ref["params"]) if need_lambda else None,
    }  # fmt: skip
    if cache is not None and entry["status"] == "success":
        cache[key] = entry
    return dict(entry, cached=False)


def run_case(case: Case, mode: str, log=print, only=None, cache: dict | None = None) -> dict:
    """Run the methods of `case` (those matching a glob in `only`, if given); returns the
    case record (rows without the loss curves). `cache`: the reference cache
    (`references.load()`, updated in place), or `None` to compute the reference."""
    t_case = time.perf_counter()
    problem = make_problem(case.depth, case.sigma, case.t1, case.kind)
    methods = methods_for(case, mode)
    if only:
        methods = tuple(m for m in methods if any(fnmatch.fnmatch(m, pat) for pat in only))
    log(f"== {case.name}: depth {case.depth}, σ={case.sigma:g}, T={case.t1:g}, "
        f"P={problem.num_params}; {', '.join(methods)}")  # fmt: skip
    ref = _reference(case, problem, cache, "gd" in methods)
    ref_time = ref["seconds"]
    ref_drops = np.asarray(ref["drops"], float)
    fine = refine_grid(problem, ref_drops)  # for the untimed accuracy twins
    record = {
        "name": case.name, "kind": case.kind, "depth": case.depth, "sigma": case.sigma,
        "t1": case.t1, "levels": [float(x) for x in problem.levels],
        "num_params": problem.num_params, "atol": problem.atol, "rtol": comp.RTOL,
        "reference": {
            "kind": case.reference, "drops": [float(x) for x in ref_drops],
            "drops_by": "crossings" if case.reference in ("dopri8", "lsoda") else "grid",
            "final_loss": ref["final_loss"], "num_steps": ref["num_steps"],
            "status": ref["status"], "seconds": ref_time, "lr": case.ref_lr,
            "cached": ref["cached"],
        },
        "rows": [],
    }  # fmt: skip
    how = "cached, computed in" if ref["cached"] else "computed in"
    log(f"  reference {case.reference}: {ref['status']}, steps={ref['num_steps']}, "
        f"drops={np.round(ref_drops, 4).tolist()} ({how} {ref_time:.1f} s)")  # fmt: skip
    rows = record["rows"]

    def add(row):
        rows.append(row)
        if "run_s" in row and row.get("run_s") is not None:
            log(
                f"  {row['method']:<16} {row['status']:<9} steps={row.get('num_steps')} "
                f"grads={row.get('num_grad_evals')} run={row['run_s'] * 1e3:.2f} ms "
                f"compile={row['compile_s']:.2f} s err={row.get('drop_err', float('nan')):.2e}"
            )
        else:
            log(f"  {row['method']:<16} {row.get('status')} {row.get('note', '')}")

    # gradflow, its progress line, the same diffrax solve by hand and GD's timed runs are
    # timed interleaved: their ratios are targets, and interleaving makes them robust to
    # load on the machine (GD's learning-rate search, untimed, runs first)
    group = {}
    gd_timed = {}
    if "gd" in methods:
        lam = ref["lambda_max"]
        record["lambda_max"] = lam
        log(f"  λ_max at the reference's final params: {lam:.6g}")
        gd = (lam,) + _gd_search(problem, fine, ref_drops, lam, log)
        for c in sorted({1.0, gd[1]} - {None}):  # 1/λ_max, and the rate at 1%
            group[("gd", c)] = comp.run_gd(problem, c / lam, repeats=None)
    if "gradflow" in methods:
        group["gradflow"] = comp.run_gradflow(problem, repeats=None)
    if "progress" in methods:  # right after gradflow's in every round (`report.paired_ratio`)
        group["gradflow_progress"] = comp.run_gradflow(problem, progress=True, repeats=None)
    if "gradflow" in methods and "diffrax_tsit5" in methods:
        # the explicit path alone (solver="tsit5"): the target against diffrax by hand
        group["gradflow_tsit5"] = comp.run_gradflow(problem, solver="tsit5", repeats=None)
    if "diffrax_tsit5" in methods:
        group["diffrax_tsit5"] = comp.run_diffrax(problem, "tsit5", repeats=None)
    if group:
        timings = timed_group({k: call for k, (call, _) in group.items()})
        exact = {}
        if "gradflow" in group and problem.levels is not None:
            # an untimed twin with root-found crossings: the same steps (`gf.Crossings` leaves
            # the step sequence unchanged), its drops to the root finder's accuracy; the
            # progress row takes the same steps too. (The Tsit5 rows, whose accuracy is no
            # target, keep plain-grid drop times: their twins would add ~30 s to quick mode.)
            mids = [float(x) for x in gf.analysis.drop_levels(problem.levels)]
            twin = comp.run_gradflow(problem, repeats=0, crossings=mids)
            exact = {"gradflow": twin, "gradflow_progress": twin}
        for k, (_, finish) in group.items():
            if isinstance(k, tuple):  # GD: finished below, in the methods' order
                gd_timed[k[1]] = finish(*timings[k])
                continue
            row = _finish(finish(*timings[k]), k, problem, ref_drops)
            if k in exact:
                twin = exact[k]
                row["drop_err_grid"] = row["drop_err"]
                row["drops"] = [float(x) for x in twin["crossings"]]
                row["drop_err"] = drop_error(twin["crossings"], ref_drops)
                row["drops_by"] = "crossings"
                row["twin_same_steps"] = twin["num_steps"] == row["num_steps"]
            add(row)
    for m in methods:
        if m in ("gradflow", "progress", "diffrax_tsit5"):
            continue
        if m == "diffrax_kvaerno5":
            kw = dict(max_steps=case.kvaerno_max_steps)
            r = comp.run_diffrax(problem, "kvaerno5", **kw)
            twin = comp.run_diffrax(fine, "kvaerno5", repeats=0, **kw)
            add(_finish(r, "diffrax_kvaerno5", problem, ref_drops, twin))
        elif m == "scipy_lsoda":
            twin = comp.run_scipy(fine, "LSODA", repeats=0)
            add(_finish(comp.run_scipy(problem, "LSODA"), "scipy_lsoda", problem, ref_drops,
                        twin))  # fmt: skip
        elif m == "scipy_bdf":
            r = comp.run_scipy(problem, "BDF", jac=True)
            twin = comp.run_scipy(fine, "BDF", jac=True, repeats=0)
            add(_finish(r, "scipy_bdf_jac", problem, ref_drops, twin))
        elif m == "gd":
            for r in _gd_rows(problem, ref_drops, *gd, gd_timed):
                add(r)
        elif m == "torchdiffeq":
            why = comp.torch_available()
            if why is None:
                twin = comp.run_torchdiffeq(fine, repeats=0)
                add(_finish(comp.run_torchdiffeq(problem), "torchdiffeq_dopri5", problem,
                            ref_drops, twin))  # fmt: skip
            else:
                add({"method": "torchdiffeq_dopri5", "status": "skipped",
                     "note": f"not importable ({why})"})  # fmt: skip
    record["seconds"] = time.perf_counter() - t_case
    return record
