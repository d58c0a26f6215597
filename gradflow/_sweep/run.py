"""Solve one chunk: the flow of every member, vmapped, and spread over the local devices.

Each group of same-shaped members gets one compiled function, reused for all its chunks
(and by later sweeps with the same settings, through a small cache). On several devices the
member axis is split over a one-axis mesh `("member",)`:

1. `shard_map` (preferred): every device runs its own vmapped adaptive loop, so a device
   stops as soon as its own slowest member is done.
2. GSPMD (fallback): `jit` with the member axis sharded. The work is split the same way, but
   the while-loop predicate is reduced over all devices, so the chunk runs in lock-step.
   Used when `shard_map` cannot trace the solve. With jax 0.10 that is the case only with
   a `stop_when`: its event root finder (optimistix Newton → lineax
   `FunctionLinearOperator`) fails inside `shard_map` (closure-converted avals carry the
   manual-mesh sharding, the basis vectors do not). Without `stop_when` the engine uses no
   root finder and `shard_map` is used (checked on 4 host CPU devices).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._flow.solve import flow

log = logging.getLogger("gradflow.sweep")

#: number of times a member function was traced (one per compiled group); for tests
TRACES = [0]

#: None: not tried yet; False: shard_map failed to trace the solve in this process
_SHARD_MAP_OK: list[bool | None] = [None]

_CACHE: dict = {}
_CACHE_MAX = 32


@dataclass(frozen=True, eq=False)
class FlowSpec:
    """Everything about the solve that is the same for all members (closed over, static)."""

    t1: float
    ts: tuple[float, ...]
    metrics: tuple[tuple[str, Any], ...]
    stop_when: Any
    loss: Any
    field: Any
    solver: Any
    rtol: float
    atol: float | None
    max_steps: int
    crossings: Any = None

    def key(self):
        return (
            self.t1, self.ts, self.metrics, self.stop_when, self.loss, self.field, self.solver,
            self.rtol, self.atol, self.max_steps, self.crossings,
        )  # fmt: skip


def member_summary(spec: FlowSpec, model, data) -> dict[str, jax.Array]:
    """The record of one member: loss and metrics on the save grid plus the final state."""
    sol = flow(
        model, data, t1=spec.t1, loss=spec.loss, field=spec.field, solver=spec.solver,
        rtol=spec.rtol, atol=spec.atol, save=np.asarray(spec.ts), metrics=dict(spec.metrics),
        stop_when=spec.stop_when, max_steps=spec.max_steps, progress=False,
        crossings=spec.crossings,
    )  # fmt: skip
    out = {
        "loss": sol.loss,
        "t_final": sol.t_final,
        "status_code": sol.status_code,
        "num_steps": sol.stats["num_steps"],
        "num_rejected": sol.stats["num_rejected"],
        "num_grad_evals": sol.stats["num_grad_evals"],
    }
    for k, v in sol.metrics.items():
        out[f"metric:{k}"] = v
    if spec.crossings is not None:
        out["crossing_time"] = sol.crossings
    return out


class GroupRunner:
    """The compiled, vmapped (and sharded) solve of one group; call it on stacked members."""

    def __init__(self, spec: FlowSpec, static, devices: tuple):
        self.devices = tuple(devices)
        self.static = static

        def one(dynamic):
            TRACES[0] += 1
            model, data = eqx.combine(dynamic, static)
            return member_summary(spec, model, data)

        self._one = one
        self._compiled: dict[int, Any] = {}  # by number of stacked members
        self.mode = "single" if len(self.devices) == 1 else None
        if len(self.devices) > 1:
            self.mesh = Mesh(np.array(self.devices), ("member",))
            self.sharding = NamedSharding(self.mesh, P("member"))
        else:
            self.sharding = jax.sharding.SingleDeviceSharding(self.devices[0])

    def _compile(self, stacked):
        batched = jax.vmap(self._one)
        if len(self.devices) == 1:
            return jax.jit(batched).lower(stacked).compile()
        if _SHARD_MAP_OK[0] is not False:
            fn = jax.shard_map(
                batched, mesh=self.mesh, in_specs=P("member"), out_specs=P("member"),
                check_vma=False,
            )  # fmt: skip
            try:
                compiled = jax.jit(fn).lower(stacked).compile()
            except Exception as e:  # noqa: BLE001  (any trace failure → fall back)
                _SHARD_MAP_OK[0] = False
                log.info("shard_map could not trace the solve (%s); using GSPMD sharding", e)
            else:
                _SHARD_MAP_OK[0] = True
                self.mode = "shard_map"
                return compiled
        self.mode = "gspmd"
        return (
            jax.jit(batched, in_shardings=self.sharding, out_shardings=self.sharding)
            .lower(stacked)
            .compile()
        )

    def __call__(self, dynamics: list) -> dict[str, np.ndarray]:
        """Solve the members whose dynamic parts are `dynamics`; numpy results, in order."""
        n = len(dynamics)
        nd = len(self.devices)
        padded = list(dynamics) + [dynamics[-1]] * (-n % nd)
        stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *padded)
        stacked = jax.device_put(stacked, self.sharding)
        if len(padded) not in self._compiled:
            self._compiled[len(padded)] = self._compile(stacked)
        out = self._compiled[len(padded)](stacked)
        return {k: np.asarray(v)[:n] for k, v in jax.device_get(out).items()}


def get_runner(spec: FlowSpec, static, shapes, devices) -> GroupRunner:
    """A runner for this group, reused from the cache when nothing static changed."""
    try:
        leaves, treedef = jax.tree.flatten(static)
        key = (spec.key(), treedef, tuple(leaves), shapes, tuple(devices))
        hash(key)
    except TypeError:  # an unhashable static part: no caching
        return GroupRunner(spec, static, devices)
    runner = _CACHE.get(key)
    if runner is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        runner = _CACHE[key] = GroupRunner(spec, static, devices)
    return runner
