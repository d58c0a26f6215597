"""`gf.Grid`: named sweep axes and their Cartesian product."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np


def _as_axis(name: str, values) -> np.ndarray:
    if isinstance(values, str | bytes) or np.ndim(values) == 0:
        raise ValueError(
            f"grid axis {name!r} must be a 1-D list or array of values, got {values!r}; "
            f"wrap a single value in a list: {name}=[{values!r}]."
        )
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"grid axis {name!r} must be 1-D, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"grid axis {name!r} is empty; give it at least one value.")
    if arr.dtype.kind not in "biufU":
        raise TypeError(f"grid axis {name!r} must hold numbers or strings, got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"grid axis {name!r} contains non-finite values: {arr.tolist()}.")
    if np.unique(arr).size != arr.size:
        raise ValueError(
            f"grid axis {name!r} repeats a value ({arr.tolist()}); each value labels one "
            "coordinate, so use another axis (e.g. seed) for repetitions."
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    return arr


def _scalar(x) -> Any:
    """numpy scalar → plain Python scalar (what `build(**point)` receives)."""
    return x.item() if isinstance(x, np.generic) else x


class Grid:
    """Named sweep axes; the sweep runs their Cartesian product.

    ```python
    grid = gf.Grid(init_scale=np.geomspace(1e-8, 1e-2, 7), seed=[0, 1, 2])
    len(grid), grid.shape   # 21, (7, 3)
    next(grid.points())     # {"init_scale": 1e-08, "seed": 0}
    ```

    Axes keep their order (the last varies fastest, as in `np.ndindex`). Values are 1-D,
    non-empty, distinct and finite (numbers or strings); `build(**point)` receives plain
    Python scalars.
    """

    def __init__(self, **axes):
        if not axes:
            raise ValueError("Grid needs at least one axis, e.g. Grid(init_scale=[1e-6, 1e-3]).")
        self.axes: dict[str, np.ndarray] = {k: _as_axis(k, v) for k, v in axes.items()}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(v.size for v in self.axes.values())

    def __len__(self) -> int:
        return math.prod(self.shape)

    def point(self, index: int) -> dict[str, Any]:
        """The point with flat (C-order) index `index`."""
        multi = np.unravel_index(index, self.shape)
        return {k: _scalar(v[i]) for (k, v), i in zip(self.axes.items(), multi)}

    def points(self) -> Iterator[dict[str, Any]]:
        """All points in flat (C-order) index order."""
        for i in range(len(self)):
            yield self.point(i)

    def to_dict(self) -> dict[str, list]:
        """Axes as plain lists (JSON/TOML friendly; part of the sweep fingerprint)."""
        return {k: v.tolist() for k, v in self.axes.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v.size}" for k, v in self.axes.items())
        return f"Grid({inner}; {len(self)} points)"
