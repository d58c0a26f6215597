"""Resumable zarr stores: resume, refusal of a different sweep, survival of SIGKILL."""

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import xarray as xr
from test_sweep import GRID, METRICS, SAVE, T1, build

import gradflow as gf
from gradflow._sweep.store import StoreError, ZarrStore

_WRITE_CHUNK = ZarrStore.write_chunk
KW = dict(t1=T1, save=SAVE, metrics=METRICS, chunk_size=4, progress=False)


@pytest.fixture(scope="module")
def reference():
    return gf.sweep(build, GRID, **KW)


class _Interrupted(Exception):
    pass


def _count_writes(monkeypatch, stop_after=None):
    writes = []

    def write_chunk(self, index, values):
        if stop_after is not None and len(writes) >= stop_after:
            raise _Interrupted  # as if Ctrl-C arrived between two chunks
        _WRITE_CHUNK(self, index, values)
        writes.append(index)

    monkeypatch.setattr(ZarrStore, "write_chunk", write_chunk)
    return writes


def test_resume_skips_finished_chunks(tmp_path, monkeypatch, reference):
    path = tmp_path / "store.zarr"
    first = _count_writes(monkeypatch, stop_after=1)
    with pytest.raises(_Interrupted):
        gf.sweep(build, GRID, store=path, **KW)
    assert first == [0]
    partial = xr.open_zarr(path)  # readable mid-sweep, in execution order
    assert int(partial.done.sum()) == 4 and partial.sizes["slot"] == 12
    assert partial.grid_index.values.tolist()[:4] == [0, 1, 2, 3]  # smallest init first

    again = _count_writes(monkeypatch)
    ds = gf.sweep(build, GRID, store=path, **KW)
    assert again == [1, 2]  # chunk 0 was not solved again
    xr.testing.assert_equal(ds, reference)
    assert ds.attrs["fingerprint"] and ds.attrs["num_pending"] == 0

    third = _count_writes(monkeypatch)
    xr.testing.assert_equal(gf.sweep(build, GRID, store=path, **KW), reference)
    assert third == []


def test_store_refuses_another_sweep(tmp_path, monkeypatch):
    path = tmp_path / "s.zarr"
    _count_writes(monkeypatch, stop_after=0)
    with pytest.raises(_Interrupted):  # creates the store, solves nothing
        gf.sweep(build, GRID, store=path, **KW)
    with pytest.raises(StoreError, match=r"s\.zarr.*t1: 30\.0 -> 60\.0.*another store path"):
        gf.sweep(build, GRID, store=path, **{**KW, "t1": 2 * T1})
    with pytest.raises(StoreError, match="chunk_size=4"):
        gf.sweep(build, GRID, store=path, **{**KW, "chunk_size": 2})
    with pytest.raises(StoreError, match="name"):
        gf.sweep(build, GRID, store=path, name="other", **KW)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a gradflow sweep store"):
        gf.sweep(build, GRID, store=foreign, **KW)


CHILD = """
import sys, time
import numpy as np
import gradflow as gf
from gradflow._sweep.store import ZarrStore

{build}

original = ZarrStore.write_chunk

def write_chunk(self, index, values):
    original(self, index, values)
    print("WROTE", index, flush=True)
    time.sleep(120)  # killed here, after the first chunk is complete

ZarrStore.write_chunk = write_chunk
grid = gf.Grid(init_scale=np.geomspace(1e-8, 1e-2, 5), seed=[0, 1])
gf.sweep(build, grid, t1={t1}, save={save}, metrics={{"rank": gf.analysis.effective_rank}},
         chunk_size=4, progress=False, store=sys.argv[1])
"""


def test_sigkill_then_resume_is_identical(tmp_path, reference):
    path = tmp_path / "killed.zarr"
    script = CHILD.format(build=textwrap.dedent(inspect.getsource(build)), t1=T1, save=SAVE)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    try:
        line = proc.stdout.readline()  # blocks until the first chunk is written
        assert line.startswith("WROTE"), line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert int(xr.open_zarr(path).done.sum()) == 4
    ds = gf.sweep(build, GRID, store=path, **KW)
    xr.testing.assert_equal(ds, reference)


#: Child-process code that announces the store's opening ("START") and every chunk write
#: ("WRITING i"), each write stretched by 0.2 s so that interruptions at random moments spread
#: over the sweep (shared with the signal tests of test_sweep_cli.py; no braces: it is pasted
#: into format strings).
STORE_PROBE = """
from gradflow._sweep.store import ZarrStore

opened, original = ZarrStore.create_or_open, ZarrStore.write_chunk

def create_or_open(self):
    out = opened(self)
    print("START", flush=True)
    return out

def write_chunk(self, index, values):
    print("WRITING", index, flush=True)
    time.sleep(0.2)
    original(self, index, values)

ZarrStore.create_or_open, ZarrStore.write_chunk = create_or_open, write_chunk
"""

RANDOM_CHILD = (
    """
import sys, time
import numpy as np
import gradflow as gf

{build}
"""
    + STORE_PROBE
    + """
grid = gf.Grid(init_scale=np.geomspace(1e-8, 1e-2, 5), seed=[0, 1])
gf.sweep(build, grid, t1={t1}, save={save}, metrics={{"rank": gf.analysis.effective_rank}},
         chunk_size=4, progress=False, store=sys.argv[1])
print("DONE", flush=True)
"""
)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_identical(tmp_path, reference):
    """Three SIGKILLs at seeded random moments: the first after a random delay from the
    store's opening (compiling or solving), the next two after a random delay from the
    first chunk write of that run (sleeping, writing data, writing `done`, solving)."""
    import random

    import jax

    path = tmp_path / "killed.zarr"
    script = RANDOM_CHILD.format(build=textwrap.dedent(inspect.getsource(build)), t1=T1, save=SAVE)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if jax.config.jax_compilation_cache_dir:  # reuse the parent's compilations
        env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip
    rng = random.Random(0)
    done_counts = []
    for k in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True,
            env=env,
        )  # fmt: skip
        try:
            wait_for = "START" if k == 0 else "WRITING"
            while not (line := proc.stdout.readline()).startswith(wait_for):
                assert line, "the child ended before it was killed"
            time.sleep(rng.uniform(0.0, 1.0 if k == 0 else 0.45))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL  # killed, not finished
        done_counts.append(int(xr.open_zarr(path).done.sum()))  # readable after every kill
    assert done_counts == sorted(done_counts)  # finished chunks are never lost
    ds = gf.sweep(build, GRID, store=path, **KW)
    xr.testing.assert_equal(ds, reference)
    assert not list(path.rglob("*.partial"))  # stale temporaries of killed writers removed
