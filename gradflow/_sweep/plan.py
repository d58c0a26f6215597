"""Execution plan of a sweep: group members by shape, order by expected cost, cut into chunks.

A vmapped adaptive solve runs in lock-step until its slowest member ends, and one compiled
function serves only one set of array shapes. So members are

1. grouped by the structure, shapes and dtypes of their `(model, data)` pytree (and equal
   static parts): each group compiles once;
2. ordered inside a group by expected cost, most expensive first (smaller init scale, longer
   plateaus), so that members of similar cost share a chunk;
3. cut into chunks of `chunk_size`; the last chunk of a group is padded by repeating a member.

Chunk `i` occupies the slots `[i * chunk_size, (i + 1) * chunk_size)` of the store, padding
slots included (their `grid_index` is -1), so no two chunks ever share a storage chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import numpy as np

#: default chunk size per device (members solved in lock-step on one device)
MEMBERS_PER_DEVICE = 16


def default_cost(point: dict) -> float:
    r"""Expected cost of a member: $-\ln\sigma$ of its init scale (0 if there is none).

    Plateaus last $\propto \ln(1/\sigma)$, so this orders members by plateau length. The init
    scale is the `init_scale` axis, or $\sigma = w^{-\gamma/2}$ from `gamma` and `width`.
    """
    if "init_scale" in point:
        return -math.log(float(point["init_scale"]))
    if "gamma" in point and "width" in point:
        return 0.5 * float(point["gamma"]) * math.log(float(point["width"]))
    return 0.0


@dataclass
class Group:
    """Members sharing one compiled solve: same pytree structure, shapes, dtypes, statics."""

    static: Any
    members: list[int] = field(default_factory=list)
    shapes: tuple = ()


@dataclass(frozen=True)
class Chunk:
    """One vmapped solve: `members` (flat grid indices, cost-sorted, unpadded) of `group`."""

    index: int
    group: int
    members: tuple[int, ...]


@dataclass
class Plan:
    chunk_size: int
    groups: list[Group]
    chunks: list[Chunk]
    num_points: int

    @property
    def num_slots(self) -> int:
        return len(self.chunks) * self.chunk_size

    def grid_index(self) -> np.ndarray:
        """Slot → flat grid index (-1 for padding slots), in execution order."""
        out = np.full(self.num_slots, -1, dtype=np.int64)
        for c in self.chunks:
            s = c.index * self.chunk_size
            out[s : s + len(c.members)] = c.members
        return out

    def padded(self, chunk: Chunk) -> list[int]:
        """The chunk's members padded to `chunk_size` by repeating its last member."""
        m = list(chunk.members)
        return m + [m[-1]] * (self.chunk_size - len(m))


def _signature(pair):
    dynamic, static = eqx.partition(pair, eqx.is_array)
    leaves, treedef = jax.tree.flatten(dynamic)
    shapes = tuple((tuple(x.shape), np.dtype(x.dtype).str) for x in leaves)
    return treedef, shapes, static


def group_members(pairs: Sequence[tuple]) -> list[Group]:
    """Group `(model, data)` pairs that can be stacked along a new leading axis."""
    groups: list[Group] = []
    keys: list[tuple] = []
    for i, pair in enumerate(pairs):
        treedef, shapes, static = _signature(pair)
        for g, (td, sh) in zip(groups, keys):
            if td == treedef and sh == shapes and eqx.tree_equal(static, g.static) is True:
                g.members.append(i)
                break
        else:
            groups.append(Group(static=static, members=[i], shapes=shapes))
            keys.append((treedef, shapes))
    return groups


def resolve_chunk_size(chunk_size, groups: list[Group], num_devices: int) -> int:
    """`None` → min(largest group, 16 per device), rounded up to a multiple of the devices."""
    if chunk_size is None:
        biggest = max(len(g.members) for g in groups)
        size = min(biggest, MEMBERS_PER_DEVICE * num_devices)
        return num_devices * math.ceil(size / num_devices)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    return int(chunk_size)


def make_plan(
    pairs: Sequence[tuple],
    points: Sequence[dict],
    *,
    chunk_size: int | None,
    num_devices: int,
    cost: Callable[[dict], float] | None = None,
) -> Plan:
    """Group, order by cost (descending; ties by grid index) and chunk the members."""
    cost = default_cost if cost is None else cost
    costs = []
    for p in points:
        c = float(cost(p))
        if not math.isfinite(c):
            raise ValueError(f"cost({p}) = {c} is not finite; return a finite number.")
        costs.append(c)
    groups = group_members(pairs)
    for g in groups:
        g.members.sort(key=lambda i: (-costs[i], i))
    size = resolve_chunk_size(chunk_size, groups, num_devices)
    chunks: list[Chunk] = []
    for gi, g in enumerate(groups):
        for s in range(0, len(g.members), size):
            chunks.append(Chunk(len(chunks), gi, tuple(g.members[s : s + size])))
    return Plan(size, groups, chunks, len(points))
