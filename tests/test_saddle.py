"""Saddle refinement (`gf.analysis.refine_saddle`) on the rank-1 saddle of VALIDATION V12(d).

Setup of V12(d): L = ½||S − W2 W1||², S = diag(3, 2, 1), H = 3, saddle W1 = W2 = √3 e1e1ᵀ.
Its Hessian is derived here by hand. Write W1 → W1 + A, W2 → W2 + B; to second order

    L − 2.5 = ½ ||B W1 + W2 A||² − ⟨R0, B A⟩,   R0 = S − W2 W1 = diag(0, s2, s3).

B W1 = √s1 B[:, 0] e1ᵀ and W2 A = √s1 e1 A[0, :], so the quadratic form splits into 2×2 blocks:
- (B[k, h], A[h, k]) for modes k = 2, 3 and h ≠ 1:  [[0, −s_k], [−s_k, 0]] → ±s_k  (H−1 pairs)
- (B[k, 1], A[1, k]) for k = 2, 3:  [[s1, −s_k], [−s_k, s1]] → s1 ± s_k
- (B[1, 1], A[1, 1]):  [[s1, s1], [s1, s1]] → 2 s1, 0
- B[1, h], A[h, 1] for h ≠ 1: 0 (the GL(H) symmetry of the hidden layer; 2(H−1) zeros)
(indices 1-based). So λ_min = −s2 (the balanced mode-2 pair grows like e^{s2 t}), the index is
2(H−1) = 4, and the saddle is one point of a 5-dimensional critical manifold.
"""

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf

S = np.array([3.0, 2.0, 1.0])
H = 3
MODES = {"modes": gf.analysis.mode_strengths}  # as in test_validation: the same compiled solve


def hessian_spectrum(s, h):
    """The hand-derived spectrum above, ascending."""
    s1, rest = s[0], s[1:]
    ev = [0.0] * (2 * (h - 1)) + [2 * s1, 0.0]
    for sk in rest:
        ev += [sk, -sk] * (h - 1) + [s1 + sk, s1 - sk]
    return np.sort(ev)


def rank1_saddle():
    data = gf.data.linear_teacher(S, key=jax.random.key(0), rotate=False)
    model = gf.models.DeepLinear(3, H, 3, depth=2, init_scale=1.0, key=jax.random.key(0))
    e11 = jnp.zeros((H, 3)).at[0, 0].set(jnp.sqrt(S[0]))
    return data, eqx.tree_at(lambda m: m.weights, model, (e11, e11.T))


def v12d_start(saddle, delta):
    w1, w2 = (w.at[1, 1].set(delta) for w in saddle.weights)
    return eqx.tree_at(lambda m: m.weights, saddle, (w1, w2))


def test_recovers_rank1_saddle_and_its_spectrum():
    data, exact = rank1_saddle()
    # from the V12(d) perturbation: back to the exact point, with the hand-derived spectrum
    sad = gf.analysis.refine_saddle(v12d_start(exact, 1e-4), data, hessian="dense")
    assert sad.converged and sad.grad_norm <= 1e-13 and abs(sad.loss - 2.5) <= 1e-12
    for d in jax.tree.leaves(jax.tree.map(jnp.subtract, sad.params, exact)):
        assert float(jnp.max(jnp.abs(d))) <= 1e-10
    np.testing.assert_allclose(sad.eigenvalues, hessian_spectrum(S, H), rtol=0, atol=1e-10)
    assert sad.index == 2 * (H - 1) == 4
    np.testing.assert_allclose(sad.unstable_eigenvalue, S[1], rtol=1e-12)
    text = repr(sad)
    assert "index=4" in text and "dense Hessian of 18 params" in text

    # from a random 1e-3 perturbation of every entry: onto the critical manifold
    # W2 = e1 aᵀ, W1 = b e1ᵀ, aᵀb = s1 (a nearby, slightly unbalanced point of it)
    rng = np.random.default_rng(7)
    noise = [1e-3 * rng.standard_normal((3, 3)) for _ in range(2)]
    perturbed = [np.asarray(w) + n for w, n in zip(v12d_start(exact, 1e-4).weights, noise)]
    start = eqx.tree_at(lambda m: m.weights, exact, tuple(map(jnp.asarray, perturbed)))
    sad = gf.analysis.refine_saddle(start, data, hessian="dense")
    assert sad.converged and sad.grad_norm <= 1e-13 and abs(sad.loss - 2.5) <= 1e-12
    w1, w2 = (np.asarray(w) for w in sad.params.weights)
    assert np.max(np.abs(w2[1:])) <= 1e-10 and np.max(np.abs(w1[:, 1:])) <= 1e-10
    np.testing.assert_allclose(w2 @ w1, np.diag([S[0], 0, 0]), rtol=0, atol=1e-10)
    # a Gauss–Newton min-norm step goes to the manifold, not along it
    assert sad.distance <= 2.0 * np.sqrt(sum(np.sum(n**2) for n in noise))
    # There the mode-k block on (β = B[k, :], α = A[:, k]) is [[b bᵀ, −s_k I], [−s_k I, a aᵀ]]:
    # on α, β ∈ a⊥ ∩ b⊥ (dimension H − 2 = 1) it is exactly ±s_k, the other pair moves by
    # O(|a − b|²). So λ = s2 exactly, the index stays 4 and the zero eigenvalues count the
    # manifold's dimension 2H − 1.
    np.testing.assert_allclose(sad.unstable_eigenvalue, S[1], rtol=1e-10)
    assert sad.index == 4
    np.testing.assert_allclose(sad.eigenvalues[:4], [-2, -2, -1, -1], rtol=0, atol=1e-5)
    assert np.sum(np.abs(sad.eigenvalues) < 1e-10) == 2 * H - 1


def test_measured_escape_by_distance_on_the_exact_trajectory():
    """The distance path of the measurement, on the closed-form V12(d) trajectory (a = b = √u,
    u the Saxe sigmoid of mode 2) saved at 40 coarse points: the first time ||θ(t) − θ*|| = D
    is √2·√u = D, i.e. u = D²/2. (The flow itself is checked in test_validation's V12(d).)"""
    data, exact = rank1_saddle()
    delta, target = 1e-4, 1e-2
    sad = gf.analysis.refine_saddle(v12d_start(exact, delta), data, target=target)
    t = np.linspace(0.0, 4.0, 40)
    v = np.sqrt(gf.theory.saxe_mode(t, S[1], delta**2))
    w = np.broadcast_to(np.asarray(exact.weights[0]), (t.size, H, 3)).copy()
    w[:, 1, 1] = v
    traj = eqx.tree_at(lambda m: m.weights, exact, (w, w.transpose(0, 2, 1)))
    sol = types.SimpleNamespace(t=t, loss=np.full(t.size, np.nan), trajectory=traj)
    measured, how = gf.analysis.measured_escape_time(sol, sad, target)
    assert how == "unstable"
    # the start lies in the unstable eigenspace, so the whole distance gives the same time
    whole, _ = gf.analysis.measured_escape_time(sol, sad, target, by="distance")
    np.testing.assert_allclose(whole, measured, rtol=1e-12)
    exact_t = gf.theory.saxe_time(S[1], delta**2, target**2 / 2)
    np.testing.assert_allclose(measured, exact_t, rtol=1e-6)
    # the linear prediction ln(D/(√2 δ))/s2 is within its O(D²) error of the true escape
    np.testing.assert_allclose(sad.predicted_escape, np.log(target / (np.sqrt(2) * delta)) / 2)
    assert abs(sad.predicted_escape / exact_t - 1) <= 1e-4
    # started at t_start = 1 (state at index 10 of a longer run), the clock restarts there
    later, _ = gf.analysis.measured_escape_time(sol, sad, target, t_start=t[10])
    np.testing.assert_allclose(later, measured - t[10], rtol=1e-12)


def test_lanczos_extremal_ritz_values():
    """Lanczos on known diagonal operators: extremal Ritz values converge, a repeated
    eigenvalue appears once (Krylov), an exhausted space is truncated."""
    from gradflow.analysis.saddle import _ritz, lanczos

    run = jax.jit(lambda d, v0: lanczos(lambda v: d * v, v0, 30))  # one compile, two operators
    v0 = jnp.asarray(np.random.default_rng(0).standard_normal(60))
    diag = jnp.asarray(np.concatenate([[-3.0, -3.0, -1.0], np.linspace(0.5, 10.0, 57)]))
    vals, vecs = _ritz(*(np.asarray(a) for a in run(diag, v0)))
    np.testing.assert_allclose(vals[:2], [-3.0, -1.0], rtol=1e-9)  # isolated: fast
    np.testing.assert_allclose(vals[-1], 10.0, rtol=1e-5)  # edge of a dense cluster: slower
    assert np.sum(vals < -1e-8) == 2
    np.testing.assert_allclose(np.abs(vecs[2:, 0]), 0.0, atol=1e-8)  # in the −3 eigenspace
    few = jnp.asarray(np.repeat([1.0, 2.0, 5.0], 20))  # 3 distinct values: breakdown after 3
    vals, _ = _ritz(*(np.asarray(a) for a in run(few, v0)))
    np.testing.assert_allclose(vals, [1.0, 2.0, 5.0], rtol=1e-12)


@pytest.mark.slow
def test_lanczos_path_matches_dense(monkeypatch):
    """The large-model path (Lanczos spectrum, matrix-free CG in the root finder, forced here on
    18 parameters) against the dense one."""
    import gradflow.analysis.saddle as saddle_module

    data, exact = rank1_saddle()
    start = v12d_start(exact, 1e-4)
    dense = gf.analysis.refine_saddle(start, data, hessian="dense", target=1e-2)
    monkeypatch.setattr(saddle_module, "_SVD_MAX", 0)
    lz = gf.analysis.refine_saddle(start, data, hessian="lanczos", target=1e-2)
    assert lz.method == "lanczos" and lz.grad_norm <= 1e-13
    np.testing.assert_allclose(lz.unstable_eigenvalue, dense.unstable_eigenvalue, rtol=1e-10)
    np.testing.assert_allclose(lz.unstable_distance, dense.unstable_distance, rtol=1e-8)
    np.testing.assert_allclose(lz.predicted_escape, dense.predicted_escape, rtol=1e-8)
    # distinct eigenvalues only: -2, -1 below zero
    assert lz.index == 2
    np.testing.assert_allclose(
        np.unique(np.round(lz.eigenvalues, 8)), np.unique(dense.eigenvalues.round(8))
    )


def test_bad_arguments_are_named():
    data, exact = rank1_saddle()
    with pytest.raises(ValueError, match="`hessian` must be one of"):
        gf.analysis.refine_saddle(exact, data, hessian="full")
    with pytest.raises(ValueError, match="`target`"):
        gf.analysis.refine_saddle(exact, data, target=-1.0)
    with pytest.raises(ValueError, match="needs `target=`"):
        gf.analysis.refine_saddle(exact, data, solution=object())
    with pytest.raises(ValueError, match="no float arrays"):
        gf.analysis.refine_saddle({"n": 3}, data, loss=lambda p, d: 0.0)


@pytest.mark.slow
def test_refine_from_a_random_init_plateau():
    """From the first plateau of a random-init staircase (H = 8, ε = 1e-6): the nearby saddle
    has the plateau's loss ½(s2² + s3²) = 2.5, λ = s2 and index 2(H − 1) (test docstring above),
    and the flow escapes along mode 2 as one balanced Saxe sigmoid, u̇ = 2u(s2 − u), u = v²,
    whose distance along the unstable direction is √2 v: reaching D takes the linear time
    ln(D/|δ_u|)/s2 plus the saturation −¼ ln(1 − D²/4) (¼ ln 2 at half strength, D = √2)."""
    data = gf.data.linear_teacher(S, key=jax.random.key(0), rotate=False)
    width, eps = 8, 1e-6
    model = gf.models.DeepLinear(3, width, 3, 2, eps, key=jax.random.key(0))
    w1, w2 = (np.asarray(w) for w in model.weights)
    half = gf.theory.random_init_half_times(S, w1, w2)
    ts = np.linspace(0.0, 8.0, 321)
    sol = gf.flow(model, data, t1=8.0, save=ts, solver="tsit5", rtol=1e-10, atol=1e-3 * eps,
                  save_params=True)  # fmt: skip
    i = int(np.argmin(np.abs(ts - (half[0] + 0.3 * (half[1] - half[0])))))
    mid = jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, sol.trajectory)
    for target in (0.5, np.sqrt(2.0)):
        sad = gf.analysis.refine_saddle(mid, data, target=target, solution=sol, t_start=ts[i])
        assert abs(sad.loss - 2.5) <= 1e-10 and sad.grad_norm <= 1e-12
        np.testing.assert_allclose(sad.unstable_eigenvalue, S[1], rtol=1e-8)
        assert sad.index == 2 * (width - 1)
        assert sad.measured_by == "unstable"
        expected = sad.predicted_escape - 0.25 * np.log(1 - target**2 / 4)
        np.testing.assert_allclose(sad.measured_escape, expected, rtol=2e-3)
