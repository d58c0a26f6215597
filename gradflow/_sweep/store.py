"""Where chunk results go: in memory, or a resumable zarr store shared by all processes.

The zarr store holds every variable along a `slot` axis in execution order (chunk `i` owns
slots `[i·c, (i+1)·c)`, zarr chunks of length `c`, so no two sweep chunks share a file), a
`grid_index` (slot → flat grid index, -1 for padding) and a `done` flag per slot, written
AFTER the chunk's data. zarr writes every chunk file atomically (temporary file, rename), so
a run killed at any moment (SIGINT, SIGTERM, SIGKILL) leaves a readable store in which `done`
marks exactly the chunks whose data is complete; re-running skips them.

The marker `gradflow_sweep.json` (written atomically, last) carries the config fingerprint.
A store with a different fingerprint is refused with the differences and the fix; a
directory that is not a gradflow store is refused; a store whose creation was interrupted
(no marker, so nothing was solved yet) is created again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import write_text
from .plan import Plan

MARKER = "gradflow_sweep.json"
FORMAT = "gradflow-sweep-store/1"


class StoreError(ValueError):
    """The store cannot be used for this sweep; the message names the store and the fix."""


@dataclass(frozen=True)
class Var:
    """A stored per-slot variable: trailing `dims`/`shape` after the slot axis."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    fill: float | int


def fingerprint(config: dict) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fit(x: np.ndarray, var: Var, rows: int) -> np.ndarray:
    """Pad trailing dims of `x` (rows, ...) with the fill value up to the variable's shape."""
    out = np.full((rows,) + var.shape, var.fill, dtype=var.dtype)
    x = np.asarray(x)
    out[(slice(0, x.shape[0]),) + tuple(slice(0, s) for s in x.shape[1:])] = x
    return out


class MemoryStore:
    """All slots in memory (`store=None`)."""

    def __init__(self, plan: Plan, variables: list[Var]):
        self.plan = plan
        self.vars = {v.name: v for v in variables}
        n = plan.num_slots
        self.arrays = {v.name: np.full((n,) + v.shape, v.fill, dtype=v.dtype) for v in variables}
        self.done = np.zeros(n, dtype=bool)

    def done_chunks(self) -> set[int]:
        c = self.plan.chunk_size
        return {i for i in range(len(self.plan.chunks)) if self.done[i * c : (i + 1) * c].all()}

    def write_chunk(self, index: int, values: dict[str, np.ndarray]) -> None:
        c = self.plan.chunk_size
        for name, var in self.vars.items():
            self.arrays[name][index * c : (index + 1) * c] = _fit(values[name], var, c)
        self.done[index * c : (index + 1) * c] = True

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        return self.arrays, self.plan.grid_index(), self.done


class ZarrStore(MemoryStore):
    """A resumable zarr (v3) directory store; see the module docstring."""

    def __init__(self, path, plan: Plan, variables: list[Var], config: dict, ts: np.ndarray):
        self.path = Path(path)
        self.plan = plan
        self.vars = {v.name: v for v in variables}
        self.config = config
        self.fingerprint = fingerprint(config)
        self.ts = np.asarray(ts)
        self._root = None

    # -- creation and checks ------------------------------------------------------------
    def _marker(self) -> dict | None:
        p = self.path / MARKER
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except ValueError:
            return None

    def _check(self, marker: dict) -> None:
        if marker.get("fingerprint") != self.fingerprint:
            old = marker.get("config", {})
            diffs = [
                f"{k}: {old.get(k)!r} -> {self.config.get(k)!r}"
                for k in sorted(set(old) | set(self.config))
                if json.dumps(old.get(k), default=str)
                != json.dumps(self.config.get(k), default=str)
            ]
            raise StoreError(
                f"store {str(self.path)!r} holds a different sweep (changed: "
                f"{'; '.join(diffs) or 'fingerprint'}). Use another store path, or delete "
                f"{str(self.path)!r} (CLI: --force) to start this sweep from scratch."
            )
        if marker.get("chunk_size") != self.plan.chunk_size:
            raise StoreError(
                f"store {str(self.path)!r} was laid out with chunk_size="
                f"{marker.get('chunk_size')}, this run asks for {self.plan.chunk_size}; pass "
                f"chunk_size={marker.get('chunk_size')} to resume it, or use another store."
            )
        if marker.get("grid_index") != self.plan.grid_index().tolist():
            raise StoreError(
                f"store {str(self.path)!r} orders its members differently from this run (a "
                "changed `cost`, or a `build` whose shapes changed); pass the same cost and "
                "build to resume it, or use another store."
            )

    def create_or_open(self) -> bool:
        """Process 0: open a matching store, or create a new one. True if created."""
        marker = self._marker()
        if marker is not None:
            self._check(marker)
            return False
        if self.path.exists():
            if not self.path.is_dir():
                raise StoreError(f"store {str(self.path)!r} exists and is not a directory.")
            if any(self.path.iterdir()):
                if not _half_created(self.path):
                    raise StoreError(
                        f"{str(self.path)!r} exists and is not a gradflow sweep store; "
                        "choose another store path or remove it."
                    )
                shutil.rmtree(self.path)  # interrupted creation: nothing was solved yet
        self._create()
        return True

    def _create(self) -> None:
        import zarr

        c, n = self.plan.chunk_size, self.plan.num_slots
        root = zarr.open_group(self.path, mode="w", zarr_format=3)
        root.attrs.update({"gradflow_format": FORMAT, "fingerprint": self.fingerprint})
        t = root.create_array("time", shape=self.ts.shape, dtype="f8", dimension_names=("time",))
        t[:] = self.ts
        gi = root.create_array(
            "grid_index", shape=(n,), chunks=(c,), dtype="i8", fill_value=-1,
            dimension_names=("slot",),
        )  # fmt: skip
        gi[:] = self.plan.grid_index()
        root.create_array(
            "done", shape=(n,), chunks=(c,), dtype="u1", fill_value=0, dimension_names=("slot",)
        )
        for v in self.vars.values():
            root.create_array(
                v.name, shape=(n,) + v.shape, chunks=(c,) + v.shape, dtype=v.dtype,
                fill_value=v.fill, dimension_names=("slot",) + v.dims,
            )  # fmt: skip
        with warnings.catch_warnings():  # "not part of the v3 spec": xarray reads it fine
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(self.path)
        marker = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "config": self.config,
            "chunk_size": c,
            "grid_index": self.plan.grid_index().tolist(),
        }
        write_text(json.dumps(marker, default=str), self.path / MARKER)

    def remove_partials(self) -> int:
        """Delete zarr's temporary `*.partial` files left by a killed writer (single-process
        sweeps only: another process may be writing one right now). Returns how many."""
        stale = list(self.path.rglob("*.partial"))
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def wait_ready(self, timeout: float, poll: float = 0.2) -> None:
        """Processes other than 0: wait for process 0 to create (or check) the store."""
        deadline = time.monotonic() + timeout
        while True:
            marker = self._marker()
            if marker is not None:
                self._check(marker)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"store {str(self.path)!r} was not created by process 0 within {timeout:g} "
                    "s; check that process 0 runs with the same store path (a shared "
                    "filesystem) or raise the timeout."
                )
            time.sleep(poll)

    # -- chunk I/O ----------------------------------------------------------------------
    @property
    def root(self):
        if self._root is None:
            import zarr

            self._root = zarr.open_group(self.path, mode="r+", zarr_format=3)
        return self._root

    def _done_flags(self) -> np.ndarray:
        return np.asarray(self.root["done"][:]).astype(bool)

    def done_chunks(self) -> set[int]:
        done, c = self._done_flags(), self.plan.chunk_size
        return {i for i in range(len(self.plan.chunks)) if done[i * c : (i + 1) * c].all()}

    def write_chunk(self, index: int, values: dict[str, np.ndarray]) -> None:
        c = self.plan.chunk_size
        sl = slice(index * c, (index + 1) * c)
        for name, var in self.vars.items():
            self.root[name][sl] = _fit(values[name], var, c)
        self.root["done"][sl] = np.ones(c, dtype=np.uint8)  # last: the chunk is complete

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        arrays = {name: np.asarray(self.root[name][:]) for name in self.vars}
        return arrays, np.asarray(self.root["grid_index"][:]), self._done_flags()


def _half_created(path: Path) -> bool:
    """A zarr group with our format attribute but no marker: creation was interrupted."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except ValueError:
        return False
    return attrs.get("gradflow_format") == FORMAT
