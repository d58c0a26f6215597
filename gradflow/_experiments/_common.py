"""Shared machinery of the `gradflow run` experiment kinds: solves, the table.

Every kind runs the exact flow once per init scale and returns `Outcome`s: the loss curve, the
predicted curve to overlay, and table rows (measured, predicted). `to_dataset` stacks them into
the `results.nc` layout (dims `init`, `save`, `quantity`) and `report` prints it.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import xarray as xr

from .._config import dumps
from .._flow import flow


@dataclasses.dataclass
class Row:
    """One line of the table: a measured number beside its prediction."""

    quantity: str
    measured: float
    predicted: float
    #: which formula predicts it ("exact", "leading order", ...), printed beside the error
    note: str = ""
    #: `measured` is itself a relative distance to the prediction (predicted = 0): its
    #: relative error is `measured`
    distance: bool = False


@dataclasses.dataclass
class Outcome:
    """One init scale: its flow, the predicted curve and its table rows."""

    init_scale: float
    time: np.ndarray
    loss: np.ndarray
    theory_time: np.ndarray
    theory_loss: np.ndarray
    rows: list[Row]
    status: str
    num_steps: int
    seconds: float
    #: divide times by this for the plot's time axis (ln(1/α) for diagonal networks)
    time_scale: float = 1.0


def rel_error(measured, predicted, distance=False) -> np.ndarray:
    """(measured − predicted)/|predicted| (nan where either is missing or predicted is 0);
    where `distance`, `measured` already is the relative error."""
    m, p = np.asarray(measured, float), np.asarray(predicted, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(np.isfinite(m) & np.isfinite(p) & (p != 0), (m - p) / np.abs(p), np.nan)
    return np.where(distance, m, err)


def save_grid(t1: float, n: int, t_min: float) -> np.ndarray:
    """`n` save times: 0, then log-spaced from `t_min` to `t1` (one length for every solve, so
    that every init scale reuses the compiled solve)."""
    return np.concatenate([[0.0], np.geomspace(t_min, t1, n - 1)])


class Solver:
    """`gf.flow` with the config's solver settings; every call has the same save length.

    Calls differ only in array values (init, save times, t1), so one kind compiles one solve.
    """

    def __init__(self, cfg, data, loss, metrics):
        self.cfg, self.data, self.loss, self.metrics = cfg, data, loss, metrics

    def __call__(self, model, ts, crossings=None):
        """The solve; `crossings` (levels of the loss, or a `gf.Crossings`): their first
        crossing times are root-found during it (`sol.crossings`)."""
        return flow(
            model, self.data, loss=self.loss, t1=float(ts[-1]), solver=self.cfg.solver,
            rtol=self.cfg.rtol, atol=self.cfg.atol, save=np.asarray(ts, float),
            metrics=self.metrics, max_steps=self.cfg.max_steps, progress=False,
            crossings=crossings,
        )  # fmt: skip


def run_scales(cfg, build, log) -> list[Outcome]:
    """Call `build(init_scale) -> Outcome` for every configured init scale, with a log line."""
    outcomes = []
    for scale in cfg.init_scales:
        tic = time.perf_counter()
        o = build(scale)
        o.seconds = time.perf_counter() - tic
        log(f"[init {scale:g}] flow: {o.status}, {o.num_steps} steps, {o.seconds:.2f} s")
        outcomes.append(o)
    return outcomes


def _pad(x, n):
    x = np.asarray(x, float).reshape(-1)
    out = np.full(n, np.nan)
    out[: min(x.size, n)] = x[:n]
    return out


def to_dataset(
    cfg,
    outcomes: list[Outcome],
    *,
    title: str,
    expectation: str,
    loss_label: str = "loss",
    time_label: str = "gradient-flow time t",
) -> xr.Dataset:
    """Stack the outcomes: curves `(init, save)`, the table `(init, quantity)`."""
    n_init = len(outcomes)
    n_save = max(max(o.time.size, o.theory_time.size) for o in outcomes)
    names = [r.quantity for r in outcomes[0].rows]
    for o in outcomes[1:]:
        if [r.quantity for r in o.rows] != names:  # pragma: no cover (a programming error)
            raise RuntimeError("every init scale must report the same table rows")
    measured = np.array([[r.measured for r in o.rows] for o in outcomes], float)
    predicted = np.array([[r.predicted for r in o.rows] for o in outcomes], float)
    distance = np.array([r.distance for r in outcomes[0].rows], bool)
    curve = lambda f: np.stack([_pad(getattr(o, f), n_save) for o in outcomes])
    dims = ("init", "quantity")
    return xr.Dataset(
        {
            "time": (("init", "save"), curve("time"), {"long_name": time_label}),
            "loss": (("init", "save"), curve("loss"), {"long_name": loss_label}),
            "theory_time": (("init", "save"), curve("theory_time")),
            "theory_loss": (("init", "save"), curve("theory_loss"), {"long_name": "prediction"}),
            "time_scale": (("init",), np.array([o.time_scale for o in outcomes], float)),
            "measured": (dims, measured),
            "predicted": (dims, predicted),
            "rel_error": (dims, rel_error(measured, predicted, distance),
                          {"long_name": "(measured − predicted)/|predicted|"}),
            "note": (("quantity",), np.asarray([r.note for r in outcomes[0].rows], dtype=str)),
            "status": (("init",), np.asarray([o.status for o in outcomes], dtype=str)),
            "num_steps": (("init",), np.array([o.num_steps for o in outcomes], np.int64)),
            "seconds": (("init",), np.array([o.seconds for o in outcomes], float)),
        },
        coords={
            "init": np.arange(n_init),
            "quantity": np.asarray(names, dtype=str),
            "init_scale": ("init", np.array([o.init_scale for o in outcomes], float)),
        },
        attrs={
            "config": dumps(cfg), "gradflow_job": "run", "experiment": cfg.experiment,
            "title": title, "expectation": expectation,
        },
    )  # fmt: skip


def report(ds: xr.Dataset) -> str:
    """The printed table: per init scale, every quantity measured beside its prediction."""
    lines = [f"\n{ds.attrs['title']}"]
    width = max(24, max(len(str(q)) for q in ds.quantity.values))
    head = f"  {'quantity':<{width}} {'measured':>12} {'predicted':>12} {'rel.err':>9}  formula"
    for i in range(ds.sizes["init"]):
        d = ds.isel(init=i)
        lines.append(f"\ninit scale {float(d.init_scale):g} (flow: {d.status.item()})")
        lines += [head, "  " + "-" * (len(head) - 2)]
        for q in range(ds.sizes["quantity"]):
            m, p = float(d.measured[q]), float(d.predicted[q])
            e = float(d.rel_error[q])
            err = f"{e:+.2e}" if np.isfinite(e) else ""
            lines.append(
                f"  {str(d.quantity.values[q]):<{width}} {m:>12.6g} {p:>12.6g} {err:>9}  "
                f"{d.note.values[q]}"
            )
    worst = np.nanmax(np.abs(ds.rel_error.values), axis=1, initial=0.0)
    summary = ", ".join(f"{float(s):g}: {w:.2e}" for s, w in zip(ds.init_scale.values, worst))
    lines.append(f"\nlargest |rel.err| by init scale: {summary}")
    lines.append(f"expected: {ds.attrs['expectation']}")
    return "\n".join(lines)
