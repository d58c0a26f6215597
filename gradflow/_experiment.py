"""The main job of `gradflow run`: deep linear staircases, exact flow, GD, theory, side by side.

Builds everything from a `RunConfig` through the public API and returns one labelled
`xarray.Dataset`; the CLI prints its plateau tables and writes it. No numerics of its own.
"""

from __future__ import annotations

import time

import jax
import numpy as np
import optax
import xarray as xr

from . import analysis, models, theory
from . import data as gdata
from ._config import GDRunConfig, RunConfig, dumps
from ._flow import flow
from ._gd import gd

METRICS = {"modes": analysis.mode_strengths, "rank": analysis.effective_rank}


def make_optimizer(rc: GDRunConfig) -> optax.GradientTransformation:
    """The optax optimizer a `[[gd.runs]]` entry names."""
    m = 0.9 if rc.momentum is None else rc.momentum
    if rc.optimizer == "sgd":
        return optax.sgd(rc.lr)
    if rc.optimizer == "momentum":
        return optax.sgd(rc.lr, momentum=m)
    if rc.optimizer == "nesterov":
        return optax.sgd(rc.lr, momentum=m, nesterov=True)
    if rc.optimizer == "adam":
        return optax.adam(rc.lr)
    raise ValueError(f"unknown optimizer {rc.optimizer!r}")  # checked by the config already


def time_step(rc: GDRunConfig) -> float:
    """Flow time per step: lr for sgd and adam; lr/(1 − m) for heavy-ball and Nesterov
    momentum, whose steady-state step on a slowly varying gradient is lr/(1 − m)·g."""
    if rc.optimizer in ("momentum", "nesterov"):
        return rc.lr / (1.0 - (0.9 if rc.momentum is None else rc.momentum))
    return rc.lr


def _theory_curve(net, model, dataset, s, t) -> np.ndarray:
    """Predicted loss curve on the flow's time grid (random-init Saxe modes for depth 2)."""
    if net.depth != 2:
        return np.full_like(t, np.nan)
    w1, w2 = (np.asarray(w) for w in model.weights)
    u, v = np.asarray(dataset.teacher.u), np.asarray(dataset.teacher.v)
    u0 = theory.random_init_u0(w1, w2, u, v)
    return theory.saxe_loss(t, s, u0)


def _predicted_drops(net, model, dataset, s) -> np.ndarray:
    """Predicted drop times (loss midpoint crossings), or nan where theory has no formula."""
    if net.depth == 2:
        w1, w2 = (np.asarray(w) for w in model.weights)
        u, v = np.asarray(dataset.teacher.u), np.asarray(dataset.teacher.v)
        return np.append(theory.drop_times_random_init(s, w1, w2, u, v), np.nan)
    return np.full(s.size + 1, np.nan)


def run_experiment(cfg: RunConfig, log=print) -> xr.Dataset:
    """Run the configured networks (flow + GD runs each) and collect one dataset."""
    key = jax.random.key(cfg.seed)
    k_data, k_model = jax.random.split(key)
    s = np.sort(np.asarray(cfg.teacher.singular_values, float))[::-1]
    dataset = gdata.linear_teacher(
        s, in_size=cfg.teacher.in_size, out_size=cfg.teacher.out_size, key=k_data,
        rotate=cfg.teacher.rotate,
    )  # fmt: skip
    levels = theory.plateau_levels(s)
    run_names = ["flow"] + [r.label for r in cfg.gd.runs]
    if len(set(run_names)) != len(run_names):
        raise ValueError(f"gd.runs has duplicate entries: {run_names[1:]}")
    per_net = []
    for i, net in enumerate(cfg.networks):
        model = models.DeepLinear(
            dataset.in_size, net.width, dataset.out_size, net.depth, net.init_scale,
            key=jax.random.fold_in(k_model, i),
        )  # fmt: skip
        label = f"depth {net.depth}, width {net.width}, init {net.init_scale:g}"
        tic = time.perf_counter()
        # the drops are root-found during the solve (`plateaus` uses them): on the save grid
        # alone a sharp late drop is only located to the grid spacing
        sol = flow(
            model, dataset, t1=net.t1, solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol,
            save=cfg.save_points, metrics=METRICS, max_steps=cfg.max_steps,
            crossings=[float(x) for x in analysis.drop_levels(levels)],
        )  # fmt: skip
        log(
            f"[{label}] flow: {sol.status}, {int(sol.stats['num_steps'])} steps, "
            f"{int(sol.stats['num_grad_evals'])} gradients, {time.perf_counter() - tic:.2f} s"
        )
        runs = [sol]
        for j, rc in enumerate(cfg.gd.runs):
            tic = time.perf_counter()
            r = gd(
                model, dataset, make_optimizer(rc), t1=net.t1, lr=time_step(rc),
                save=np.asarray(sol.t), metrics=METRICS, batch_size=rc.batch_size,
                key=jax.random.fold_in(key, 1000 + j),
            )  # fmt: skip
            log(
                f"[{label}] {rc.label}: {r.status}, {int(r.stats['num_steps'])} steps, "
                f"{time.perf_counter() - tic:.2f} s"
            )
            runs.append(r)
        drops = _predicted_drops(net, model, dataset, s)
        tables = [analysis.plateaus(r, levels=levels, drops=drops) for r in runs]
        theory_loss = _theory_curve(net, model, dataset, s, np.asarray(sol.t))
        per_net.append((net, runs, tables, theory_loss, np.asarray(sol.t)))
    return _to_dataset(cfg, per_net, run_names, s, levels)


def _pad(x, n, fill=np.nan):
    x = np.asarray(x, float)
    out = np.full((n,) + x.shape[1:], fill)
    out[: x.shape[0]] = x
    return out


def _to_dataset(cfg, per_net, run_names, s, levels) -> xr.Dataset:
    n_save = max(len(r.t) for _, runs, *_ in per_net for r in runs)
    n_net, n_run, n_modes, n_lv = len(per_net), len(run_names), s.size, levels.size
    shape = (n_net, n_run, n_save)
    arr = {k: np.full(shape, np.nan) for k in ("time", "loss", "effective_rank")}
    modes = np.full(shape + (n_modes,), np.nan)
    table = {k: np.full((n_net, n_run, n_lv), np.nan) for k in ("level", "start", "end", "drop")}
    pred_drop = np.full((n_net, n_lv), np.nan)
    theory_loss = np.full((n_net, n_save), np.nan)
    theory_time = np.full((n_net, n_save), np.nan)
    status = np.empty((n_net, n_run), dtype=object)
    steps = np.zeros((n_net, n_run), dtype=np.int64)
    grads = np.zeros((n_net, n_run), dtype=np.int64)
    for i, (net, runs, tables, th, tgrid) in enumerate(per_net):
        for j, (r, tab) in enumerate(zip(runs, tables)):
            arr["time"][i, j] = _pad(r.t, n_save)
            arr["loss"][i, j] = _pad(r.loss, n_save)
            arr["effective_rank"][i, j] = _pad(r.metrics["rank"], n_save)
            modes[i, j] = _pad(r.metrics["modes"], n_save)
            for k in table:
                table[k][i, j] = getattr(tab, k)
            status[i, j] = r.status
            steps[i, j] = int(r.stats["num_steps"])
            grads[i, j] = int(r.stats["num_grad_evals"])
        pred_drop[i] = tables[0].predicted_drop
        theory_loss[i] = _pad(th, n_save)
        theory_time[i] = _pad(tgrid, n_save)
    dims3 = ("network", "run", "save")
    ds = xr.Dataset(
        {
            "time": (dims3, arr["time"], {"long_name": "gradient-flow time (GD: k·lr)"}),
            "loss": (dims3, arr["loss"], {"long_name": "loss ½·mean‖f(x)−y‖²"}),
            "effective_rank": (dims3, arr["effective_rank"], {"long_name": "modes past ½ s_k"}),
            "mode_strength": (dims3 + ("mode",), modes, {"long_name": "q_kᵀ W r_k"}),
            "theory_time": (("network", "save"), theory_time),
            "theory_loss": (("network", "save"), theory_loss, {"long_name": "Saxe prediction"}),
            "plateau_level": (("network", "run", "plateau"), table["level"]),
            "plateau_start": (("network", "run", "plateau"), table["start"]),
            "plateau_end": (("network", "run", "plateau"), table["end"]),
            "plateau_drop": (("network", "run", "plateau"), table["drop"]),
            "predicted_level": (("plateau",), levels),
            "predicted_drop": (("network", "plateau"), pred_drop),
            "status": (("network", "run"), status.astype(str)),
            "num_steps": (("network", "run"), steps),
            "num_grad_evals": (("network", "run"), grads),
            "singular_values": (("mode",), s),
        },
        coords={
            "network": np.arange(n_net),
            "run": np.asarray(run_names, dtype=str),
            "mode": np.arange(n_modes),
            "plateau": np.arange(n_lv),
            "depth": ("network", [n.depth for n, *_ in per_net]),
            "width": ("network", [n.width for n, *_ in per_net]),
            "init_scale": ("network", [n.init_scale for n, *_ in per_net]),
        },
        attrs={"config": dumps(cfg), "gradflow_job": "run"},
    )
    return ds


def plateau_report(ds: xr.Dataset) -> str:
    """The printed table: per network, measured plateaus of the flow next to the prediction."""
    lines = []
    for i in range(ds.sizes["network"]):
        d = ds.isel(network=i)
        desc = f"depth {int(d.depth)}, width {int(d.width)}, init {float(d.init_scale):g}"
        lines.append(f"\nnetwork {i}: {desc}")
        tab = analysis.PlateauTable(
            level=d.plateau_level.sel(run="flow").values,
            start=d.plateau_start.sel(run="flow").values,
            end=d.plateau_end.sel(run="flow").values,
            drop=d.plateau_drop.sel(run="flow").values,
            predicted_level=d.predicted_level.values,
            predicted_drop=d.predicted_drop.values,
        )
        lines.append(str(tab))
        for run in d.run.values[1:]:
            gd_drop = d.plateau_drop.sel(run=run).values
            flow_drop = d.plateau_drop.sel(run="flow").values
            ok = np.isfinite(gd_drop) & np.isfinite(flow_drop)
            err = np.abs(gd_drop[ok] - flow_drop[ok]) / flow_drop[ok]
            worst = f"{err.max():.2%}" if err.size else "n/a"
            drops = np.round(gd_drop[ok], 3).tolist()
            lines.append(f"   {run}: drops {drops} (max rel. diff to flow {worst})")
    return "\n".join(lines)
