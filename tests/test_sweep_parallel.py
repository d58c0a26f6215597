"""Several devices (4 host-platform CPU devices) and several processes (jax.distributed on
127.0.0.1), each in subprocesses so that this test process keeps its single device."""

import inspect
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from test_sweep import GRID, METRICS, SAVE, T1, build

import gradflow as gf

HEADER = """
import json, sys
import numpy as np
import gradflow as gf
{build}
grid = gf.Grid(init_scale=np.geomspace(1e-8, 1e-2, 5), seed=[0, 1])
kw = dict(t1={t1}, save={save}, metrics={{"rank": gf.analysis.effective_rank}}, chunk_size=4,
          progress=False)
"""

FOUR_DEVICES = """
import jax
assert len(jax.devices()) == 4
gf.sweep(build, grid, **kw).to_netcdf(sys.argv[1])
"""

PROCESS = """
ds = gf.sweep(build, grid, store=sys.argv[1], coordinator_address=sys.argv[2],
              num_processes=2, process_id=int(sys.argv[3]), host_timeout=240, **kw)
if int(sys.argv[3]) == 0:
    ds.to_netcdf(sys.argv[1] + ".nc")
print(json.dumps({"pending": ds.attrs["num_pending"], "processes": ds.attrs["num_processes"]}))
"""


def _script(body: str) -> str:
    head = HEADER.format(build=textwrap.dedent(inspect.getsource(build)), t1=T1, save=SAVE)
    return head + body


def _env(device_count=None):
    # keep the suite's own XLA_FLAGS (conftest: optimisation level), so that subprocesses
    # compile exactly as the in-process reference does; only the device count is added
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    if device_count is not None:
        flags.append(f"--xla_force_host_platform_device_count={device_count}")
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags)}


@pytest.fixture(scope="module")
def reference():
    return gf.sweep(build, GRID, t1=T1, save=SAVE, metrics=METRICS, chunk_size=4, progress=False)


def test_four_devices_equal_one_device(tmp_path, reference):
    path = tmp_path / "four.nc"
    out = subprocess.run(
        [sys.executable, "-c", _script(FOUR_DEVICES), str(path)], capture_output=True,
        text=True, timeout=300, env=_env(device_count=4),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    many = xr.open_dataset(path).load()
    assert many.attrs["num_devices"] == 4
    # no stop_when: the engine needs no root finder, so each device runs its own loop
    assert many.attrs["device_parallelism"] == "shard_map"
    for v in ("status", "num_steps", "num_rejected", "plateau_count"):
        np.testing.assert_array_equal(many[v].values, reference[v].values)
    for v in ("loss", "final_loss", "rank", "t_final", "first_escape_time", "plateau_drop"):
        np.testing.assert_allclose(many[v].values, reference[v].values, rtol=1e-10, atol=1e-13)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two fresh processes each compile the solve: ~40 s on 2 loaded cores
def test_two_processes_equal_one_process(tmp_path, reference):
    store = tmp_path / "shared.zarr"
    addr = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _script(PROCESS), str(store), addr, str(pid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )  # fmt: skip
        for pid in (0, 1)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-3000:]
    first = json.loads(outs[0][0].strip().splitlines()[-1])
    assert first == {"pending": 0, "processes": 2}
    ds = xr.open_dataset(str(store) + ".nc").load()
    xr.testing.assert_equal(ds, reference)
    # each process solved its own chunks: 0 and 2 by process 0, 1 by process 1
    assert int(xr.open_zarr(store).done.sum()) == 12
