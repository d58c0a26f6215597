"""Checkpointed solves: a long solve run in segments, resumable after a crash or a kill.

`gf.flow(..., checkpoint="run.ckpt", checkpoint_every=N)` runs the solve as segments of at
most `N` steps. Each segment is one `diffeqsolve` that starts from the previous one's last
accepted state with its solver state (FSAL stage, RKC's spectral estimate, ...), controller
state (PI error history, the guard's counters and crossing records) and `made_jump`, and
with `dt0` chosen so that its first step ends exactly (bitwise) where the uninterrupted
solve's next step would have ended. The step sequence is therefore the uninterrupted one,
and so are the saved record and the final state. After each segment the carry, the record
so far and the step counts are written atomically (temporary file, then rename) to the
checkpoint; re-running the same call resumes from it, and a finished checkpoint returns its
result without solving. A checkpoint written by a different problem or configuration is
refused, naming what changed.

The fingerprint covers the initial parameters and the data (their bytes), times, save grid,
tolerances, solver, field, controller, metrics, stop condition and crossings; not
`checkpoint_every` (any segmentation gives the same steps, so it may change). Functions
are known by their name only (as in sweep stores), so keep the names of changed functions
distinct.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._io import atomic_write
from .solution import MAX_STEPS, FlowSolution

FORMAT = "gradflow-checkpoint/2"  # 2: the carry holds the flat state (solve._Flat)


class CheckpointError(ValueError):
    """The checkpoint file cannot be used for this solve; the message names the fix."""


def _describe(x):
    if x is None or isinstance(x, bool | int | float | str):
        return x
    if isinstance(x, dict):
        return {str(k): _describe(v) for k, v in sorted(x.items())}
    if isinstance(x, list | tuple):
        return [_describe(v) for v in x]
    if isinstance(x, eqx.Module):
        return eqx.tree_pformat(x, short_arrays=False)
    if callable(x):
        return f"{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', repr(x))}"
    return repr(x)


def _digest(tree) -> str:
    h = hashlib.sha256()
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for x in leaves:
        if eqx.is_array(x) or isinstance(x, np.ndarray):
            a = np.asarray(x)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(x).encode())
    return h.hexdigest()[:16]


def config_of(*, params, args, t0, t1, ts, max_steps, **options) -> dict:
    """What identifies a checkpointed solve (JSON-able)."""
    return {
        "params": _digest(params),
        "args": _digest(args),
        "t0": float(t0),
        "t1": float(t1),
        "save": _digest(np.asarray(ts)),
        # (not checkpoint_every: any segmentation gives the same steps, so it may change)
        "max_steps": int(max_steps),
        **{k: _describe(v) for k, v in sorted(options.items())},
    }


def _save(path: Path, meta: dict, trees: dict) -> None:
    arrays = {"__meta__": np.array(json.dumps(meta))}
    for name, tree in trees.items():
        for i, x in enumerate(jax.tree.leaves(tree)):
            arrays[f"{name}/{i}"] = np.asarray(x)

    def write(tmp):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        Path(tmp).write_bytes(buf.getvalue())

    atomic_write(path, write)


def _load(path: Path, config: dict) -> tuple[dict, dict] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except Exception as e:  # noqa: BLE001  (any unreadable file)
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable gradflow checkpoint ({e}); delete it "
            "or pass another checkpoint path."
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a gradflow checkpoint ({FORMAT}); delete it or "
            "pass another checkpoint path."
        )
    old = meta.get("config", {})
    if old != config:
        diffs = [
            f"{k}: {old.get(k)!r} -> {config.get(k)!r}"
            for k in sorted(set(old) | set(config))
            if old.get(k) != config.get(k)
        ]
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by a different solve (changed: "
            f"{'; '.join(diffs)}). Pass another checkpoint path, or delete {str(path)!r} to "
            "start this solve from scratch."
        )
    return meta, arrays


def _unflatten(template, arrays: dict, name: str, path: Path):
    """The stored leaves of `name`, in the structure of `template`; refused unless they are
    exactly its leaves (count, shapes, dtypes). A solver whose state changed between two
    gradflow versions has the same fingerprint (its settings) but another state layout,
    which would otherwise be read into the wrong leaves."""
    leaves, treedef = jax.tree.flatten(template)
    stored = sorted(int(k.split("/", 1)[1]) for k in arrays if k.split("/", 1)[0] == name)
    fits = stored == list(range(len(leaves))) and all(
        np.shape(arrays[f"{name}/{i}"]) == np.shape(x)
        and np.asarray(arrays[f"{name}/{i}"]).dtype == np.dtype(x.dtype)
        for i, x in enumerate(leaves)
    )
    if not fits:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a solver state of another layout ({len(stored)} "
            f"arrays where this solve's {name} has {len(leaves)}, or other shapes): it was "
            f"written by another gradflow version. Delete {str(path)!r} to start this solve "
            "from scratch, or pass another checkpoint path."
        )
    return jax.tree.unflatten(treedef, [arrays[f"{name}/{i}"] for i in range(len(leaves))])


def _dt0_to(t: float, tnext: float) -> float:
    """`dt0` with `t + dt0 == tnext` exactly in float64 (diffrax computes tnext = t + dt0)."""
    t, tnext = np.float64(t), np.float64(tnext)
    dt = tnext - t
    for _ in range(64):
        got = t + dt
        if got == tnext:
            return float(dt)
        dt = np.nextafter(dt, np.inf if got < tnext else -np.inf)
    raise RuntimeError(f"cannot resume at t={t!r} with the next step ending at {tnext!r}.")


def run(path, every, *, loss_fn, params, args, t0, t1, ts, max_steps, config, **kw):
    """Run `_solve` in segments of at most `every` steps, checkpointing after each."""
    from .solve import _init_carry, _solve, _work_stats

    path = Path(path)
    solver, field, crossings = kw["solver"], kw["field"], kw.get("crossings")
    setup = {k: kw[k] for k in ("field", "rtol", "atol", "controller", "progress", "crossings")}
    if kw.get("dt0") is not None:
        raise ValueError("checkpoint=... chooses the first step itself; leave dt0=None.")
    loaded = _load(path, config)  # refuses a foreign checkpoint before any compute
    # the carry diffrax would start from (on resume only its structure): cheap, no loop
    init = eqx.filter_eval_shape if loaded is not None else (lambda f, *a, **k: f(*a, **k))
    carry = init(_init_carry, loss_fn, params, args, t0, t1, solver=solver, **setup)
    if loaded is None:
        # numpy leaves (no weak types), as after every segment: one trace for all segments
        carry = jax.device_get(carry)
    ts_np = np.asarray(ts)
    grid_tree = {"loss": 0.0, "metrics": {k: 0.0 for k in kw["metrics"]}}
    if kw["save_params"]:
        grid_tree["params"] = params
    grid_def = jax.tree.structure(grid_tree)
    counts = np.zeros(3, np.int64)  # steps, accepted, rejected
    merged = filled = last = None
    done, code, t_final = False, MAX_STEPS, float(t0)
    if loaded is not None:
        meta, arrays = loaded
        carry = _unflatten(carry, arrays, "carry", path)
        counts = np.asarray(arrays["counts/0"], np.int64)
        filled = np.asarray(arrays["filled/0"], bool)
        n = grid_def.num_leaves
        merged = jax.tree.unflatten(grid_def, [arrays[f"grid/{i}"] for i in range(n)])
        last = jax.tree.unflatten(grid_def, [arrays[f"last/{i}"] for i in range(n)])
        done, code, t_final = meta["done"], meta["status_code"], meta["t_final"]
    segments = 0 if loaded is None else loaded[0]["segments"]
    while not done:
        budget = int(min(every, max_steps - counts[0]))
        dt0 = jnp.asarray(_dt0_to(float(carry["t"]), float(carry["tnext"])))
        opts = {k: v for k, v in kw.items() if k != "dt0"}
        _, carry, raw = _solve(
            loss_fn, params, args, jnp.asarray(t0, float), jnp.asarray(t1, float),
            jnp.asarray(ts), max_steps=budget, dt0=dt0, resume=carry, **opts,
        )  # fmt: skip
        carry = jax.device_get(carry)
        raw = jax.device_get(raw)
        counts = counts + np.asarray([int(c) for c in raw["counts"]], np.int64)
        t_final = float(carry["t"])
        grid_ts = np.asarray(raw["grid_ts"])
        reached = np.isfinite(grid_ts) & (grid_ts <= t_final)
        if merged is None:
            merged = jax.tree.map(lambda x: np.full_like(np.asarray(x), np.nan), raw["grid"])
            filled = np.zeros(ts_np.shape, bool)
        new = reached & ~filled  # earlier save times were saved by earlier segments

        def put(old, x):
            mask = new.reshape((-1,) + (1,) * (np.ndim(x) - 1))
            return np.where(mask, np.asarray(x), old)

        merged = jax.tree.map(put, merged, raw["grid"])
        filled = filled | new
        last = raw["last"]
        code = int(raw["status_code"])
        # a segment's step budget running out is not the solve's, unless it is the last
        done = not (code == MAX_STEPS and counts[0] < max_steps)
        segments += 1
        meta = {
            "format": FORMAT, "config": config, "done": bool(done), "status_code": code,
            "t_final": t_final, "segments": segments,
        }  # fmt: skip
        trees = {"carry": carry, "counts": counts, "filled": filled, "grid": merged}
        _save(path, meta, {**trees, "last": last})
    return _assemble(
        solver, field, crossings, ts_np, carry, counts, filled, merged, last, code, t_final,
        kw["save_params"], _work_stats, ravel_pytree(params)[1],
    )  # fmt: skip


def _assemble(solver, field, crossings, ts, carry, counts, filled, merged, last, code, t_final,
              save_params, work_stats, unravel) -> FlowSolution:  # fmt: skip
    def record(x, x_final):
        x = np.asarray(x)
        mask = filled.reshape((-1,) + (1,) * (x.ndim - 1))
        return np.concatenate([np.where(mask, x, np.nan), np.asarray(x_final)[None]])

    rec = jax.tree.map(record, merged, last)
    work = solver.work(carry["solver_state"]) if hasattr(solver, "work") else None
    n_steps, n_acc, n_rej = (jnp.asarray(int(c)) for c in counts)
    stats = work_stats(solver, field, n_steps, n_acc, n_rej, work, watched=crossings is not None)
    crossed = None
    if crossings is not None:
        times = np.asarray(carry["controller_state"][4][-1])
        crossed = jnp.asarray(np.where(times <= t_final, times, np.nan))
    return FlowSolution(
        t=jnp.asarray(record(ts, t_final)),
        loss=jnp.asarray(rec["loss"]),
        metrics={k: jnp.asarray(v) for k, v in rec["metrics"].items()},
        params=unravel(jnp.asarray(carry["y"])),  # the flat state (`solve._Flat`)
        model=None,
        t_final=jnp.asarray(t_final),
        status_code=jnp.asarray(code, jnp.int32),
        stats=stats,
        trajectory=jax.tree.map(jnp.asarray, rec["params"]) if save_params else None,
        crossings=crossed,
        crossing_levels=None if crossings is None else crossings.levels,
    )
