"""Reproducibility across programs: a vmapped solve equals the same solves one by one, and an
interrupted, checkpointed solve resumes bitwise.

These are guarantees made with XLA's default code generator, the one users get; the tier's
fast generator rounds differently in different programs (`conftest.py`). Every test here is
`@pytest.mark.default_codegen`: they run in one subprocess with that generator, started by
the first of them (one file, so that pytest-xdist's `loadfile` gives them to one worker).
Their solves are in the test bodies, not in fixtures, which pytest would also set up in the
parent process, for nothing.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_flow import VMAP_GRID, VMAP_SCALES, _solve_at_scale
from test_long_solves import EVERY, KW, LEVELS, _Interrupted, assert_same, ckpt, problem, reference
from test_sweep import GRID, METRICS, SAVE, T1, build

import gradflow as gf


@pytest.mark.default_codegen
def test_vmap_over_init_scales_equals_loop():
    batched = jax.vmap(_solve_at_scale)(jnp.asarray(VMAP_SCALES))
    looped = [_solve_at_scale(s) for s in VMAP_SCALES]
    n = len(VMAP_SCALES)
    codes = np.asarray(batched.status_code)
    assert codes.shape == (n,) and np.issubdtype(codes.dtype, np.integer)
    statuses = [sol.status for sol in looped]
    # both outcomes occur, so the nan padding under vmap is really exercised
    assert statuses[0] == "success" and "max_steps" in statuses
    np.testing.assert_array_equal(batched.status, statuses)
    # under vmap nothing is trimmed: grid + final state, unreached slots are nan
    assert batched.t.shape == (n, VMAP_GRID.size + 1)
    for i, sol in enumerate(looped):
        t_b, loss_b = np.asarray(batched.t[i]), np.asarray(batched.loss[i])
        finite = np.isfinite(t_b)
        assert np.array_equal(np.isnan(loss_b), ~finite)
        if sol.status == "max_steps":
            assert not finite.all()
        # the concrete solution is the batched one with the unreached slots dropped (and the
        # final state deduplicated when it lands on the last save time)
        kept_t, kept_loss = t_b[finite], loss_b[finite]
        if kept_t.size == np.size(sol.t) + 1:
            kept_t, kept_loss = np.delete(kept_t, -2), np.delete(kept_loss, -2)
        np.testing.assert_allclose(kept_t, sol.t, rtol=1e-10, atol=0)
        np.testing.assert_allclose(kept_loss, sol.loss, rtol=1e-10, atol=0)
        np.testing.assert_allclose(batched.t_final[i], sol.t_final, rtol=1e-10)
        for wb, wl in zip(batched.model.weights, sol.model.weights):
            np.testing.assert_allclose(wb[i], wl, rtol=1e-10, atol=1e-14 * VMAP_SCALES[i])


@pytest.mark.default_codegen
def test_interrupted_checkpointed_solve_resumes_bitwise(tmp_path, monkeypatch):
    model, data = problem()
    plain = reference()
    assert plain.status == "success" and int(plain.stats["num_steps"]) > 5 * EVERY
    path = tmp_path / "run.ckpt"

    save = ckpt._save
    writes = []

    def save_then_stop(p, meta, trees):
        save(p, meta, trees)
        writes.append(meta["segments"])
        if len(writes) == 3:
            raise _Interrupted  # as if Ctrl-C came right after the third segment

    monkeypatch.setattr(ckpt, "_save", save_then_stop)
    with pytest.raises(_Interrupted):
        gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, crossings=LEVELS, **KW)
    with np.load(path) as z:
        meta = json.loads(str(z["__meta__"]))
    assert meta["segments"] == 3 and not meta["done"] and meta["t_final"] < KW["t1"]

    monkeypatch.setattr(ckpt, "_save", save)
    sol = gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, crossings=LEVELS, **KW)
    assert_same(sol, plain)  # the step sequence, record and counts of the uninterrupted solve
    # (and of an uninterrupted checkpointed solve)
    whole = gf.flow(
        model, data, checkpoint=tmp_path / "whole.ckpt", checkpoint_every=EVERY,
        crossings=LEVELS, **KW,
    )  # fmt: skip
    assert_same(whole, plain)

    # a finished checkpoint gives its result without solving again
    monkeypatch.setattr("gradflow._flow.solve._solve", None)
    assert_same(
        gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, crossings=LEVELS, **KW),
        plain,
    )


@pytest.mark.default_codegen
def test_sweep_equals_loop_of_flows():
    ds = gf.sweep(build, GRID, t1=T1, save=SAVE, metrics=METRICS, chunk_size=4, progress=False)
    assert ds.loss.dims == ("init_scale", "seed", "time") and ds.sizes["time"] == SAVE
    assert ds.attrs["num_chunks"] == 3 and ds.attrs["num_pending"] == 0
    np.testing.assert_array_equal(ds.time.values, gf.log_grid(T1, SAVE))
    for p in GRID.points():
        # a sweep's default solver is auto without its dense branches (`sweep_solver`)
        sol = gf.flow(*build(**p), t1=T1, save=SAVE, metrics=METRICS, progress=False,
                      solver=gf.Auto(dense=None, rosw=None, linear_start=False))  # fmt: skip
        r = ds.sel(p)
        n = len(sol.loss) - 1  # trimmed record: grid up to t1 (exclusive), then the final state
        # 1e-10 relative, down to rounding of the converged loss (L0 = 7, atol 1e-14 · L0)
        np.testing.assert_allclose(r.loss.values[:n], sol.loss[:n], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(float(r.final_loss), sol.loss[-1], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(r["rank"].values[:n], sol.metrics["rank"][:n])
        assert float(r.t_final) == float(sol.t_final) and str(r.status.values) == sol.status
        # the same step sequence: steps and rejections equal exactly
        assert int(r.num_steps) == int(sol.stats["num_steps"])
        assert int(r.num_rejected) == int(sol.stats["num_rejected"])
        # gradient evaluations to 2%: in stiff mode RKC's discrete choices — its stage count
        # s = 1 + ceil(√(1 + 1.54·h·ρ)) and its self-check that refreshes a stale ρ — can flip
        # on the last-digit rounding differences between a vmapped and an unbatched
        # computation (see the loss tolerance above); measured: 390 vs 394 at init 1e-2
        evals, ref = int(r.num_grad_evals), int(sol.stats["num_grad_evals"])
        assert abs(evals - ref) <= 0.02 * ref, (evals, ref)
    # plateau summary: smaller init → later first escape (seed 0 column)
    esc = ds.first_escape_time.sel(seed=0).values
    assert np.all(np.diff(esc) < 0) and np.all(ds.plateau_count.values >= 2)
