"""`gf.sweep`: the flow of every point of a grid, as one labelled dataset."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._flow.auto import Auto
from .._flow.crossings import as_crossings
from .._flow.field import AbstractField, GradientFlow
from .._flow.options import resolve_save, resolve_solver
from .._flow.solve import _check_common
from .._signals import terminate_as_exit
from ..losses import mse
from . import hosts as _hosts
from .dataset import assemble
from .grid import Grid
from .plan import Plan, make_plan
from .run import FlowSpec, get_runner
from .store import MARKER, MemoryStore, Var, ZarrStore
from .summary import MAX_PLATEAUS, chunk_variables

_RESERVED = {
    "loss", "final_loss", "t_final", "status", "status_code", "num_steps", "num_rejected",
    "num_grad_evals", "plateau_count", "first_escape_time", "plateau_level", "plateau_drop",
    "time",
}  # fmt: skip


def sweep(
    build: Callable[..., tuple],
    grid: Grid,
    *,
    t1: float,
    save=200,
    metrics: dict[str, Callable] | None = None,
    stop_when: Callable | None = None,
    loss: Callable = mse,
    field: AbstractField = GradientFlow(),
    solver=None,
    rtol: float = 1e-6,
    atol: float | None = None,
    max_steps: int = 1_000_000,
    chunk_size: int | None = None,
    devices=None,
    store: str | Path | None = None,
    cost: Callable[[dict], float] | None = None,
    name: str = "",
    meta: dict | None = None,
    progress: bool | None = None,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    distributed: bool = False,
    host_timeout: float = 86400.0,
    crossings=None,
) -> xr.Dataset:
    r"""Run the exact gradient flow for every point of `grid`; one labelled dataset back.

    `build(**point)` returns `(model, data)` for one grid point. Members whose pytrees have
    the same structure, shapes and dtypes share one compiled, vmapped solve (an axis such as
    `width` makes one group per value). Inside a group members run in chunks ordered by
    expected cost, so that a chunk's lock-step loop wastes little on fast members. Failure is
    data: a member that diverges or runs out of steps is reported in `status`, the others are
    unaffected.

    **Arguments:**

    - `build`: `build(**point) -> (model, data)`; called once for every point, up front.
    - `grid`: a [`gradflow.Grid`][].
    - `t1`, `save`, `metrics`, `stop_when`, `loss`, `field`, `solver`, `rtol`, `atol`,
      `max_steps`: as in [`gradflow.flow`][], the same for every member (`save` is an int or
      explicit times: the common save grid, the `time` dimension). One difference: the
      default solver (`None` or `"auto"`) is `gf.Auto(dense=None, rosw=None,
      linear_start=False)`, i.e. `auto` with RKC as its only stiff method and no linear
      start (under `jax.vmap` all of `auto`'s branches run on every step, and the dense
      ones cost a Hessian and an `eigh`, the linear start a $P \times P$ product); pass
      `gf.Auto()` to have them anyway.
    - `chunk_size`: members per vmapped solve (default `min(largest group, 16 × devices)`).
    - `devices`: `None` (all local devices), an int (the first n) or a list of devices; the
      member axis of each chunk is split over them.
    - `store`: a directory for a resumable zarr store. Finished chunks are kept there;
      re-running the same sweep skips them; a different sweep on the same store is refused.
    - `cost`: `cost(point) -> float`, expected cost (default: $-\ln$ init scale, see
      `default_cost`); larger runs first.
    - `name`: a label stored in the attributes (and part of the store's fingerprint).
    - `meta`: JSON-able settings that `build` depends on (teacher, sizes, ...): stored in
      the attributes and part of the store's fingerprint, so a store refuses a sweep whose
      `build` was configured differently (`build` itself is opaque to the fingerprint).
    - `progress`: chunks done/total, members per second and ETA on stderr (`None`: only if
      stderr is a terminal).
    - `coordinator_address`, `num_processes`, `process_id`: join a multi-process sweep via
      `jax.distributed.initialize` (or `distributed=True` to let jax detect SLURM/TPU
      settings). Each process solves a disjoint set of chunks into the shared `store`.
    - `host_timeout`: seconds to wait for the store (processes ≠ 0) and for the other
      processes' chunks (process 0).
    - `crossings`: loss levels or `gf.Crossings(levels, fn(model))`, as in
      [`gradflow.flow`][]: adds `crossing_time(..., level)`, the first crossing of each
      level by every member, located during the solve (`nan` if not crossed).

    **Returns:**

    An `xarray.Dataset` with the grid axes as dimensions (coordinates = the axis values) and
    `time` (the save grid): `loss(..., time)`, each metric `(..., time, ...)` and its value at
    the end `final_<metric>`, `final_loss`, `t_final`, `status` (strings; `pending` for
    members not solved yet in a partial view), `num_steps`, `num_rejected`, `num_grad_evals`,
    and a plateau summary (`plateau_count`, `first_escape_time`, `plateau_level`,
    `plateau_drop`). The config is in `attrs`.
    """
    hosts = _hosts.connect(coordinator_address, num_processes, process_id, distributed)
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a gf.Grid, got {type(grid).__name__}.")
    if not callable(build):
        raise TypeError("build must be a function build(**point) -> (model, data).")
    t1f = _check_common(t1, rtol, atol, max_steps, stop_when, field, where="gf.sweep")
    if hosts.num_processes > 1 and store is None:
        raise ValueError(
            "a multi-process sweep needs store=PATH on a filesystem all processes share."
        )
    metrics = dict(metrics or {})
    for k in metrics:
        if k in _RESERVED or k.startswith("final_") or k in grid.names:
            raise ValueError(f"metric name {k!r} clashes with a dataset variable; rename it.")
    crossings = as_crossings(crossings)
    ts = resolve_save(save, 0.0, t1f)
    devices = _resolve_devices(devices)
    points = list(grid.points())
    pairs = [_call_build(build, p) for p in points]
    store_path = None if store is None else Path(store)
    if chunk_size is None and store_path is not None:
        chunk_size = _stored_chunk_size(store_path)
    plan = make_plan(pairs, points, chunk_size=chunk_size, num_devices=len(devices), cost=cost)
    variables = _layout(plan, pairs, metrics, ts.size)
    if crossings is not None:
        k = len(crossings.levels)
        variables.append(Var("crossing_time", ("level",), (k,), "f8", float("nan")))
    solver = sweep_solver(solver)
    spec = FlowSpec(
        t1=t1f, ts=tuple(float(t) for t in ts), metrics=tuple(metrics.items()),
        stop_when=stop_when, loss=loss, field=field, solver=solver, rtol=rtol, atol=atol,
        max_steps=int(max_steps), crossings=crossings,
    )  # fmt: skip
    config = _config(grid, spec, name)
    if crossings is not None:  # (only then: stores of sweeps without crossings keep their key)
        config["crossings"] = {"levels": list(crossings.levels), "fn": _describe(crossings.fn)}
    config["meta"] = json.loads(json.dumps(meta or {}, default=str))
    if store_path is None:
        st = MemoryStore(plan, variables)
    else:
        st = ZarrStore(store_path, plan, variables, config, ts)
        if hosts.process_id == 0:
            st.create_or_open()
            if hosts.num_processes == 1:
                st.remove_partials()
        else:
            st.wait_ready(host_timeout)
    done = st.done_chunks()
    todo = [c for c in plan.chunks if hosts.mine(c.index) and c.index not in done]
    dyn = [eqx.partition(p, eqx.is_array)[0] for p in pairs]
    modes = set()
    # SIGTERM unwinds like Ctrl-C; the store is safe either way (atomic files, `done` last)
    with terminate_as_exit(), _Progress(len(plan.chunks), len(done), progress) as bar:
        for chunk in todo:
            group = plan.groups[chunk.group]
            runner = get_runner(spec, group.static, group.shapes, devices)
            members = plan.padded(chunk)
            out = runner([dyn[i] for i in members])
            modes.add(runner.mode)
            st.write_chunk(chunk.index, chunk_variables(out, ts))
            bar.update(len(chunk.members))
    if hosts.num_processes > 1 and hosts.process_id == 0:
        total = set(range(len(plan.chunks)))
        _hosts.wait_until(
            lambda: st.done_chunks() >= total, timeout=host_timeout,
            what=f"the other processes' chunks in {str(store_path)!r}",
        )  # fmt: skip
    attrs = {
        "gradflow_job": "sweep",
        "name": name,
        "config": config,
        "fingerprint": st.fingerprint if isinstance(st, ZarrStore) else "",
        "chunk_size": plan.chunk_size,
        "num_chunks": len(plan.chunks),
        "num_groups": len(plan.groups),
        "num_devices": len(devices),
        "num_processes": hosts.num_processes,
        "device_parallelism": (
            "single" if len(devices) == 1 else ",".join(sorted(m for m in modes if m)) or "n/a"
        ),
    }
    arrays, grid_index, done_slots = st.read()
    ds = assemble(grid, ts, variables, arrays, grid_index, done_slots, attrs)
    if crossings is not None:
        ds = ds.assign_coords(level=("level", np.asarray(crossings.levels)))
    return ds


def _call_build(build, point):
    try:
        out = build(**point)
    except Exception as e:
        e.add_note(f"(in gf.sweep: build(**{point}))")
        raise
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"build(**{point}) must return (model, data), got {type(out).__name__}.")
    if not any(eqx.is_inexact_array(x) for x in jax.tree.leaves(out[0])):
        raise TypeError(f"build(**{point}) returned a model without floating-point arrays.")
    return out


def _resolve_devices(devices) -> tuple:
    local = jax.local_devices()
    if devices is None:
        return tuple(local)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(f"devices={devices}, but this process has {len(local)} device(s).")
        return tuple(local[:devices])
    devices = tuple(devices)
    if not devices:
        raise ValueError("devices is empty; pass None to use all local devices.")
    foreign = [d for d in devices if d not in local]
    if foreign:
        raise ValueError(f"devices {foreign} are not local to this process.")
    return devices


def _stored_chunk_size(path: Path) -> int | None:
    try:
        return int(json.loads((path / MARKER).read_text())["chunk_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _layout(plan: Plan, pairs, metrics: dict, n_time: int) -> list[Var]:
    nan = float("nan")
    out = [
        Var("loss", ("time",), (n_time,), "f8", nan),
        Var("final_loss", (), (), "f8", nan),
        Var("t_final", (), (), "f8", nan),
        Var("status_code", (), (), "i1", -1),
        Var("num_steps", (), (), "i8", -1),
        Var("num_rejected", (), (), "i8", -1),
        Var("num_grad_evals", (), (), "i8", -1),
        Var("plateau_count", (), (), "i8", -1),
        Var("first_escape_time", (), (), "f8", nan),
        Var("plateau_level", ("plateau",), (MAX_PLATEAUS,), "f8", nan),
        Var("plateau_drop", ("plateau",), (MAX_PLATEAUS,), "f8", nan),
    ]
    for name, fn in metrics.items():
        shapes = []
        for g in plan.groups:
            model, data = pairs[g.members[0]]
            s = jax.eval_shape(lambda m, d: jnp.asarray(fn(m, d), float), model, data).shape
            shapes.append(s)
        if len({len(s) for s in shapes}) > 1:
            raise ValueError(f"metric {name!r} returns arrays of different ranks: {shapes}.")
        shape = tuple(int(max(d)) for d in zip(*shapes)) if shapes[0] else ()
        dims = tuple(f"{name}_dim{k}" for k in range(len(shape)))
        out.append(Var(name, ("time",) + dims, (n_time,) + shape, "f8", nan))
        out.append(Var(f"final_{name}", dims, shape, "f8", nan))
    return out


def sweep_solver(solver):
    """The solver of a sweep: `None` and `"auto"` become `Auto(dense=None, rosw=None,
    linear_start=False)`.

    Under `jax.vmap`, `auto`'s mode switch is a select that runs both of its branches on
    every step; its dense exponential branch (a Hessian and an `eigh` per step, for ≤ 64
    parameters) would then cost every member on every step: a sweep of 8 two-layer ReLU
    nets (61 parameters, never stiff) took 0.25 s instead of 0.03 s. RKC's branch costs a
    few gradients; the linear start's (`gradflow._flow.linear`) a gradient and a
    $P \\times P$ product per step, and its dense output a polynomial of degree 10. Solver
    instances (including `gf.Auto()`) are used as given.
    """
    if solver is None or (isinstance(solver, str) and solver.lower() == "auto"):
        return Auto(dense=None, rosw=None, linear_start=False)
    return solver


def _describe(x) -> str | None:
    if x is None:
        return None
    if isinstance(x, eqx.Module):
        return eqx.tree_pformat(x, short_arrays=False)
    return f"{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', repr(x))}"


def _config(grid: Grid, spec: FlowSpec, name: str) -> dict:
    return {
        "name": name,
        "axes": grid.to_dict(),
        "t1": spec.t1 if math.isfinite(spec.t1) else "inf",
        "save": list(spec.ts),
        "rtol": spec.rtol,
        "atol": spec.atol,
        "solver": eqx.tree_pformat(resolve_solver(spec.solver), short_arrays=False),
        "max_steps": spec.max_steps,
        "metrics": sorted(k for k, _ in spec.metrics),
        "stop_when": _describe(spec.stop_when),
        "loss": _describe(spec.loss),
        "field": _describe(spec.field),
    }


class _Progress:
    """tqdm over members (chunks done/total in the text, members/s, ETA) on stderr."""

    def __init__(self, num_chunks: int, chunks_done: int, progress: bool | None):
        self.show = sys.stderr.isatty() if progress is None else bool(progress)
        self.total, self.done = num_chunks, chunks_done
        self.bar = None

    def __enter__(self):
        if self.show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, unit="chunk", file=sys.stderr,
                            desc="sweep", dynamic_ncols=True)  # fmt: skip
            self.start, self.members = time.perf_counter(), 0
        return self

    def update(self, members: int):
        if self.bar is not None:
            self.members += members
            rate = self.members / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:.1f} members/s", refresh=False)
            self.bar.update(1)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False
