"""Long single solves: level crossings recorded on the way (`crossings=`), and checkpoints
that resume (`checkpoint=`).

One file so that the solves share compilations: the uninterrupted solve with crossings is
both the reference of the crossing checks and of the checkpointed solve.

Predictions: the Saxe sigmoid of VALIDATION V1 (`gf.theory.saxe_loss`, inverted here by
bisection) and its mode half-times (`gf.theory.saxe_time`); and, to separate the
interpolant from the solve, the root of L(y(t)) on diffrax's own dense output of the same
solve (same solver, controller and tolerances, hence the same steps). Checkpointed solves
must reproduce the uninterrupted one bitwise.
"""

import functools
import inspect
import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_validation import S, decoupled_3x3, v1_data

import gradflow as gf
from gradflow._flow import checkpoint as ckpt

PLATEAUS = [7.0, 2.5, 0.5, 0.0]  # ½ Σ_{j>k} s_j² of V1
# three of them are the drop levels (midpoints) of the plateaus
LEVELS = [6.9, 6.0, 4.75, 2.5, 1.5, 0.25, 0.1, 0.01]
# V1's problem at rtol 1e-10: 377 steps, so checkpoint_every=40 makes 10 segments
KW = dict(t1=10.0, save=16, solver="tsit5", rtol=1e-10, atol=1e-14, progress=False)
EVERY = 40


def problem(a0=1e-3):
    """Shared by the tests (and embedded in the subprocess script)."""
    from test_validation import decoupled_3x3, v1_data

    data = v1_data()
    return decoupled_3x3(data, a0), data


@functools.cache
def reference():
    """The uninterrupted solve with crossings (shared: one compile, one run)."""
    model, data = problem()
    return gf.flow(model, data, crossings=LEVELS, **KW)


def _bisect(f, lo, hi, levels, n=64):
    """Vectorised bisection of the decreasing f(t) = level on [lo, hi] (to the last ulp)."""
    levels = np.asarray(levels)
    lo, hi = np.full(levels.shape, lo), np.full(levels.shape, hi)
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        above = np.asarray(f(mid)) > levels
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------------------------
# crossings


def test_crossings_match_dense_output_and_saxe_and_leave_the_record_alone():
    """(The bitwise comparison with the same gf.flow without crossings is `-m slow`; here
    the reference without crossings is diffrax by hand, which costs one compile less.)"""
    model, data = problem()
    sol = reference()
    assert sol.status == "success"
    times = np.asarray(sol.crossings)
    assert times.shape == (len(LEVELS),) and np.all(np.diff(times) > 0)

    # 2. the same solve by hand in diffrax with dense output; root of L(y(t)) on it
    params = tuple(model.weights)

    def loss_w(w):  # gf.losses.mse of the depth-2 linear net, written out
        return 0.5 * jnp.mean(jnp.sum((data.x @ (w[1] @ w[0]).T - data.y) ** 2, axis=-1))

    np.testing.assert_allclose(float(loss_w(params)), float(sol.loss[0]), rtol=1e-15)
    term = dfx.ODETerm(lambda t, w, a: jax.tree.map(jnp.negative, jax.grad(loss_w)(w)))
    ctrl = dfx.PIDController(rtol=KW["rtol"], atol=KW["atol"], pcoeff=0.3, icoeff=0.3)
    dense = dfx.diffeqsolve(
        term, dfx.Tsit5(), 0.0, KW["t1"], None, params, saveat=dfx.SaveAt(dense=True),
        stepsize_controller=ctrl, max_steps=4096,
    )  # fmt: skip
    # 1. the record is untouched: the steps and saved losses of the solve without crossings
    for k, mine in (("num_steps", "num_steps"), ("num_accepted_steps", "num_accepted"),
                    ("num_rejected_steps", "num_rejected")):  # fmt: skip
        assert int(dense.stats[k]) == int(sol.stats[mine])
    on_dense = jax.jit(jax.vmap(lambda t: loss_w(dense.evaluate(t))))
    # (the same interpolant at the same points; only the loss is summed in another order)
    np.testing.assert_allclose(sol.loss[:-1], on_dense(jnp.asarray(sol.t[:-1])), rtol=1e-13)
    ref = _bisect(on_dense, 0.0, KW["t1"], LEVELS)
    # The quintic Hermite refinement is sixth order in the step, Tsit5's dense output fourth
    # order with a small constant: both sit at the solve's own accuracy (next check, ~1e-10
    # at rtol 1e-10). Measured: 1.9e-10 relative at most; the cubic bracket alone is off by
    # up to 9e-8, so this tolerance fails without the refinement.
    np.testing.assert_allclose(times, ref, rtol=2e-9, atol=0)

    # 3. against the exact Saxe loss (VALIDATION V1, u0 = 1e-6). V1's tolerance is 1e-6; at
    # rtol 1e-10 the times come out within 1.7e-10 (measured), the dense-output roots
    # within 5e-11.
    exact = _bisect(lambda t: gf.theory.saxe_loss(t, S, 1e-6), 0.0, KW["t1"], LEVELS)
    np.testing.assert_allclose(times, exact, rtol=2e-9, atol=0)

    # 4. plateaus() takes its drop times from the recorded crossings of the drop levels
    mids = gf.analysis.drop_levels(PLATEAUS)
    assert set(mids.tolist()) <= set(LEVELS)
    table = gf.analysis.plateaus(sol, levels=PLATEAUS)
    exact_drops = _bisect(lambda t: gf.theory.saxe_loss(t, S, 1e-6), 0.0, KW["t1"], mids)
    np.testing.assert_allclose(table.drop[:3], exact_drops, rtol=2e-9, atol=0)
    # (from the 16 saves alone, linear interpolation is off by percents)
    coarse = gf.analysis.plateaus(t=sol.t, loss=sol.loss, levels=PLATEAUS)
    assert np.max(np.abs(coarse.drop[:3] / exact_drops - 1)) > 1e-3


@pytest.mark.slow
def test_crossings_leave_the_record_bitwise_alone():
    model, data = problem()
    sol = reference()
    plain = gf.flow(model, data, **KW)
    assert sol.status == plain.status == "success"
    # same steps, bitwise the same saved losses and final state
    for k in ("num_steps", "num_accepted", "num_rejected"):
        assert int(sol.stats[k]) == int(plain.stats[k])
    np.testing.assert_array_equal(sol.loss, plain.loss)
    for a, b in zip(sol.model.weights, plain.model.weights):
        np.testing.assert_array_equal(a, b)
    # the watch is charged: one gradient at t0 and one per accepted step
    extra = int(sol.stats["num_grad_evals"]) - int(plain.stats["num_grad_evals"])
    assert extra == int(sol.stats["num_accepted"]) + 1


@pytest.mark.slow
def test_crossings_of_a_user_function_under_vmap():
    """Mode strengths crossing half their target are the Saxe half-times, per member."""
    data = v1_data()
    a0 = np.array([1e-3, 1e-2])
    models = [decoupled_3x3(data, a) for a in a0]
    fn = lambda m: gf.analysis.mode_strengths(m, data)[0]  # mode 1 (s = 3)
    cr = gf.Crossings([0.75, 1.5, 2.25], fn=fn)

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *models)
    times = np.asarray(jax.vmap(lambda m: gf.flow(m, data, crossings=cr, **KW).crossings)(stacked))
    assert times.shape == (2, 3)
    s = S[0]
    for i, a in enumerate(a0):
        u0 = a * a
        # u(t) = s·e^{2st}/(e^{2st} − 1 + s/u0) inverted at u = f·s
        pred = np.array([gf.theory.saxe_time(s, u0, f * s) for f in (0.25, 0.5, 0.75)])
        np.testing.assert_allclose(times[i], pred, rtol=1e-6, atol=0)
    np.testing.assert_allclose(times[:, 1], gf.theory.saxe_half_time(s, a0**2), rtol=1e-6)


@pytest.mark.slow
def test_crossings_stop_at_divergence():
    """L = −θ⁴/4 from θ = 1 blows up at t = 1/2: L(t) = −1/(4(1 − 2t)²)."""
    loss = lambda p, a: -0.25 * jnp.sum(p**4)
    levels = [-1.0, -100.0, -1e250]  # crossed at t = 1/4 and 19/40; the last never
    sol = gf.solve_flow(loss, jnp.ones(1), t1=1.0, solver="tsit5", rtol=1e-10, atol=1e-12,
                        save=8, progress=False, crossings=levels)  # fmt: skip
    assert sol.status == "diverged" and abs(float(sol.t_final) - 0.5) < 1e-3
    np.testing.assert_allclose(sol.crossings[:2], [0.25, 0.475], rtol=1e-8)
    assert np.isnan(sol.crossings[2])  # a non-finite step end is not a crossing


def test_crossings_bad_input():
    data = v1_data()
    model = decoupled_3x3(data, 1e-3)
    with pytest.raises(ValueError, match="non-empty list of finite numbers"):
        gf.flow(model, data, crossings=[], **KW)
    with pytest.raises(ValueError, match="finite"):
        gf.Crossings([1.0, float("nan")])
    with pytest.raises(TypeError, match="gf.Crossings"):
        gf.flow(model, data, crossings={"loss": [1.0]}, **KW)
    with pytest.raises(ValueError, match="adaptive step-size controller"):
        gf.flow(
            model, data, crossings=[1.0], t1=1.0, solver="tsit5", dt0=0.1,
            controller=dfx.ConstantStepSize(), progress=False,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# checkpoints


def assert_same(a, b):
    """Bitwise equality of two solutions (nan == nan)."""
    for name in ("t", "loss", "t_final", "status_code", "crossings"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for x, y in zip(jax.tree.leaves(a.model), jax.tree.leaves(b.model)):
        np.testing.assert_array_equal(x, y)
    assert {k: int(v) for k, v in a.stats.items()} == {k: int(v) for k, v in b.stats.items()}


class _Interrupted(Exception):
    pass


def test_checkpoint_refuses_another_solve(tmp_path):
    model, data = problem()
    path = tmp_path / "run.ckpt"
    ckpt._save(path, {"format": ckpt.FORMAT, "config": {"rtol": 1.0}}, {})
    with pytest.raises(ckpt.CheckpointError, match=r"different solve \(changed: .*rtol"):
        gf.flow(model, data, checkpoint=path, **KW)
    config = ckpt.config_of(params=model, args=data, t0=0.0, t1=1.0, ts=[0.0], max_steps=1)
    other = ckpt.config_of(
        params=problem(1e-2)[0], args=data, t0=0.0, t1=1.0, ts=[0.0], max_steps=1
    )
    assert config["params"] != other["params"] and config["args"] == other["args"]
    path.write_text("not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="not a readable gradflow checkpoint"):
        gf.flow(model, data, checkpoint=path, **KW)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive number"):
        gf.flow(model, data, checkpoint=path, checkpoint_every=0, **KW)
    with pytest.raises(ValueError, match="concrete inputs only"):
        jax.vmap(lambda m: gf.flow(m, data, checkpoint=path, **KW).loss)(model)


def test_checkpoint_refuses_a_solver_state_of_another_layout(tmp_path, monkeypatch):
    # a checkpoint whose fingerprint matches but whose carry has other leaves (as one written
    # by a gradflow version whose solver keeps other state) is refused, not read shifted
    model, data = problem()
    path = tmp_path / "run.ckpt"
    save = ckpt._save

    def save_then_stop(p, meta, trees):
        save(p, meta, trees)
        raise _Interrupted

    monkeypatch.setattr(ckpt, "_save", save_then_stop)
    with pytest.raises(_Interrupted):
        gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, **KW)
    monkeypatch.setattr(ckpt, "_save", save)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    last = max(int(k.split("/")[1]) for k in arrays if k.startswith("carry/"))
    for broken in (
        {k: v for k, v in arrays.items() if k != f"carry/{last}"},  # a leaf fewer
        {**arrays, f"carry/{last}": np.zeros((3, 3, 3))},  # another shape
    ):
        with open(path, "wb") as f:  # (np.savez would append ".npz" to a path)
            np.savez(f, **broken)
        with pytest.raises(ckpt.CheckpointError, match="solver state of another layout"):
            gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, **KW)
    with open(path, "wb") as f:  # the file as written resumes
        np.savez(f, **arrays)
    sol = gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, **KW)
    assert sol.status == "success"


CHILD = """
import sys
sys.path.insert(0, {tests!r})
import gradflow as gf
from gradflow._flow import checkpoint as ckpt

{problem}

save = ckpt._save

def announce(p, meta, trees):
    save(p, meta, trees)
    print("SAVED", meta["segments"], flush=True)

ckpt._save = announce
model, data = problem()
gf.flow(model, data, checkpoint=sys.argv[1], checkpoint_every={every}, crossings={levels!r},
        **{kw!r})
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_solve_then_resume_is_bitwise(tmp_path):
    """SIGKILL at seeded random moments while segments run; the re-run matches exactly."""
    model, data = problem()
    plain = reference()
    path = tmp_path / "killed.ckpt"
    script = CHILD.format(
        tests=os.path.dirname(__file__), problem=textwrap.dedent(inspect.getsource(problem)),
        every=EVERY // 4, kw=KW, levels=LEVELS,
    )  # fmt: skip
    rng = random.Random(0)
    kills = 0
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )  # fmt: skip
        try:
            # wait for a random number of further checkpoints, then kill at once: the
            # child is inside the next segment (or writing it)
            for _ in range(rng.randint(1, 4)):
                line = proc.stdout.readline()
                if not line.startswith("SAVED"):
                    break
            else:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert kills == 2
    with np.load(path) as z:
        assert not json.loads(str(z["__meta__"]))["done"]
    # resumed with another segment length (allowed: any segmentation gives the same steps)
    sol = gf.flow(model, data, checkpoint=path, checkpoint_every=EVERY, crossings=LEVELS, **KW)
    assert_same(sol, plain)
