"""gf.Grid, the sweep plan and gf.sweep in one process (memory results)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf
from gradflow._sweep import plan as gplan
from gradflow._sweep import run as grun

T1, SAVE = 30.0, 40
METRICS = {"rank": gf.analysis.effective_rank}


def build(init_scale, seed=0, width=4):
    """Shared by every sweep test (and embedded in the subprocess scripts)."""
    import jax

    import gradflow as gf

    key = jax.random.fold_in(jax.random.key(0), seed)
    data = gf.data.linear_teacher([3.0, 2.0, 1.0], key=jax.random.key(1))
    return gf.models.DeepLinear(3, width, 3, 2, init_scale, key=key), data


GRID = gf.Grid(init_scale=np.geomspace(1e-8, 1e-2, 5), seed=[0, 1])


def test_grid():
    g = gf.Grid(init_scale=[1e-6, 1e-3, 1e-1], seed=[0, 1])
    assert len(g) == 6 and g.shape == (3, 2) and g.names == ("init_scale", "seed")
    pts = list(g.points())
    assert pts[0] == {"init_scale": 1e-6, "seed": 0} and pts[-1] == {"init_scale": 0.1, "seed": 1}
    assert type(pts[0]["seed"]) is int and type(pts[0]["init_scale"]) is float
    with pytest.raises(ValueError, match="'width' is empty"):
        gf.Grid(init_scale=[1e-3], width=[])
    with pytest.raises(ValueError, match="'seed' repeats"):
        gf.Grid(seed=[0, 0])
    with pytest.raises(ValueError, match="1-D list"):
        gf.Grid(init_scale=1e-3)


def test_plan_groups_orders_and_chunks():
    pts = [{"init_scale": s, "width": w} for w in (2, 3) for s in (1e-2, 1e-8, 1e-5)]
    pairs = [({"w": jnp.zeros((p["width"], 2))}, jnp.zeros(3)) for p in pts]
    plan = gplan.make_plan(pairs, pts, chunk_size=2, num_devices=1)
    assert [g.members for g in plan.groups] == [[1, 2, 0], [4, 5, 3]]  # small init first
    assert [c.members for c in plan.chunks] == [(1, 2), (0,), (4, 5), (3,)]
    assert plan.grid_index().tolist() == [1, 2, 0, -1, 4, 5, 3, -1]
    assert plan.padded(plan.chunks[1]) == [0, 0]
    by_cost = gplan.make_plan(
        pairs, pts, chunk_size=None, num_devices=2, cost=lambda p: p["width"]
    )
    assert by_cost.chunk_size == 4  # min(largest group 3, 32) rounded up to 2 devices
    assert by_cost.groups[0].members == [0, 1, 2]  # equal costs keep grid order


@pytest.mark.slow
def test_sweep_records_crossing_times_per_member():
    grid = gf.Grid(init_scale=[1e-6, 1e-3], seed=[0])
    levels = [6.0, 2.0, 0.3]  # between the plateaus 7 → 2.5 → 0.5 → 0
    kw = dict(t1=T1, save=SAVE, solver="tsit5", progress=False)
    ds = gf.sweep(build, grid, crossings=levels, chunk_size=2, **kw)
    assert ds.crossing_time.dims == ("init_scale", "seed", "level")
    np.testing.assert_array_equal(ds.level.values, levels)
    for p in grid.points():
        sol = gf.flow(*build(**p), crossings=levels, **kw)  # the same solve, unbatched
        np.testing.assert_allclose(ds.crossing_time.sel(p).values, sol.crossings, rtol=1e-10)
    t = ds.crossing_time.sel(seed=0).values
    assert np.all(np.diff(t, axis=1) > 0) and np.all(t[0] > t[1])  # smaller init: later


def test_width_axis_compiles_once_per_group():
    grid = gf.Grid(width=[2, 3], init_scale=[1e-6, 1e-3, 1e-1])
    before = grun.TRACES[0]
    ds = gf.sweep(build, grid, t1=5.0, save=8, chunk_size=2, progress=False)
    assert ds.attrs["num_groups"] == 2 and ds.attrs["num_chunks"] == 4
    assert grun.TRACES[0] - before == 2  # one trace per width, shared by its two chunks
    assert (ds.status.values == "success").all()
    gf.sweep(build, grid, t1=5.0, save=8, chunk_size=2, progress=False)
    assert grun.TRACES[0] - before == 2  # cached across sweeps with the same settings


class _Scalar(eqx.Module):
    theta: jax.Array


class _Coeffs(eqx.Module):
    a: jax.Array
    b: jax.Array


def _toy_loss(model, data):
    return jnp.sum(0.5 * data.a * model.theta**2 - 0.25 * data.b * model.theta**4)


#: dθ/dt = -aθ + bθ³ from θ = 1: "ok" decays (8 steps); "blowup" reaches infinity at t = 1/2
#: (diverged after ~210 steps); "slow" grows like e^{100 t} (~340 steps > max_steps = 300)
_CASES = {"ok": (1.0, 0.0), "blowup": (0.0, 1.0), "slow": (-100.0, 0.0)}


def test_failure_is_data_per_member():
    grid = gf.Grid(case=list(_CASES))
    ds = gf.sweep(
        lambda case: (_Scalar(jnp.ones(2)), _Coeffs(*map(jnp.asarray, _CASES[case]))), grid,
        t1=1.0, save=10, loss=_toy_loss, max_steps=300, atol=1e-8, progress=False,
    )  # fmt: skip
    assert ds.attrs["num_chunks"] == 1  # all three in ONE vmapped solve
    assert ds.status.values.tolist() == ["success", "diverged", "max_steps"]
    np.testing.assert_allclose(float(ds.final_loss.sel(case="ok")), np.exp(-2.0), rtol=1e-5)
    assert abs(float(ds.t_final.sel(case="blowup")) - 0.5) < 1e-3
    assert int(ds.num_steps.sel(case="slow")) == 300
    assert np.isfinite(ds.loss.sel(case="slow").values[0])  # the record up to there is kept


def test_bad_arguments():
    with pytest.raises(TypeError, match="must return \\(model, data\\)"):
        gf.sweep(lambda **point: None, GRID, t1=1.0, progress=False)
    with pytest.raises(ValueError, match="t1 must be > 0"):
        gf.sweep(build, GRID, t1=-1.0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        gf.sweep(build, GRID, t1=1.0, chunk_size=0)
    with pytest.raises(ValueError, match="clashes"):
        gf.sweep(build, GRID, t1=1.0, metrics={"loss": gf.analysis.effective_rank})
