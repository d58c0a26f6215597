r"""A second-order Runge–Kutta–Chebyshev solver (RKC) for stiff gradient flows.

Gradient flow $\dot\theta = -\nabla L(\theta)$ has a (nearly) real, non-positive Jacobian
spectrum $-\nabla^2 L$, which is what stabilised explicit methods are built for: an $s$-stage
RKC step is stable for $h\rho \lesssim 0.65\,s^2$, so the cost per unit time grows like
$\sqrt{\lambda_{max}}$ instead of $\lambda_{max}$, with no linear algebra (it vmaps like an
explicit method). See PERFORMANCE.md, "Two stiff strategies, prototyped".

Reference: B. P. Sommeijer, L. F. Shampine, J. G. Verwer, "RKC: an explicit solver for
parabolic PDEs", J. Comput. Appl. Math. 88 (1998) 315–326 (and its Fortran code `rkc.f`,
whose recurrences and error estimate are followed here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp

from .traced import traced_once

#: Damping of the Chebyshev stability polynomial (Sommeijer et al.).
DAMPING = 2.0 / 13.0


def _lin(coeffs, trees):
    """Σ c_i · tree_i, leaf by leaf; coefficients are cast to each leaf's dtype."""

    def leaf(*xs):
        out = None
        for c, x in zip(coeffs, xs):
            term = jnp.asarray(c).astype(x.dtype) * x
            out = term if out is None else out + term
        return out

    return jax.tree.map(leaf, *trees)


def _norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def fsal_slope(terms, t0, y0, args, f0, made_jump):
    """The slope F(y0) of a first-same-as-last method: the `f0` its state carries, or, after a
    jump (an event that changed y; diffrax's `made_jump`, traced or the static `False`),
    F(y0) evaluated afresh."""
    if made_jump is False:
        return f0
    return jax.lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: f0)


def power_iteration(terms, t, y, args, v, n):
    """`n` power iterations on $v \\mapsto J v$, $J$ the Jacobian of the vector field (one
    `jax.jvp` each; dynamic `n`, so cheap under vmap). Returns (‖Jv‖ estimate of ρ, v)."""

    def body(carry):
        i, v, rho = carry
        _, jv = jax.jvp(lambda z: terms.vf(t, z, args), (y,), (v,))
        nrm = _norm(jv)
        ok = nrm > 0
        v = jax.tree.map(lambda a, b: jnp.where(ok, a / jnp.where(ok, nrm, 1), b), jv, v)
        return i + 1, v, jnp.where(ok, nrm, rho)

    def cond(carry):
        return carry[0] < n

    rho0 = jnp.zeros((), jnp.result_type(float))
    _, v, rho = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), v, rho0))
    return rho, v


def random_unit(y):
    """A fixed-seed random pytree shaped like `y`, of unit norm: the power iteration's start."""
    leaves, treedef = jax.tree.flatten(y)
    keys = jax.random.split(jax.random.key(0), len(leaves))
    v = jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                     for k, x in zip(keys, leaves)])  # fmt: skip
    nv = _norm(v)
    return jax.tree.map(lambda x: x / jnp.where(nv > 0, nv, 1).astype(x.dtype), v)


def _w1(s, w0):
    """$w_1 = T_s'(w_0) / T_s''(w_0)$ in closed form (as in `rkc.f`)."""
    temp1 = w0 * w0 - 1.0
    temp2 = jnp.sqrt(temp1)
    arg = s * jnp.log(w0 + temp2)
    return jnp.sinh(arg) * temp1 / (jnp.cosh(arg) * s * temp2 - w0 * jnp.sinh(arg))


class RKC(dfx.AbstractAdaptiveSolver):
    r"""Runge–Kutta–Chebyshev method of order 2 with a damped Chebyshev stability polynomial.

    Each step uses $s = 1 + \lfloor\sqrt{1 + 1.54\,h\,\hat\rho}\rfloor$ stages (as `rkc.f`; at
    least 2), where $\hat\rho$ = `safety` × an estimate of the spectral radius of the Jacobian
    of the vector field, from warm-started power iterations on Jacobian-vector products
    (`jax.jvp` of the vector field). The stages run in a `lax.while_loop` with a dynamic trip
    count; their recurrence coefficients come from $T_j(w_0)$ and its derivatives, computed on
    the fly. FSAL: the vector field at the end of a step starts the next one.

    The local error estimate is Sommeijer et al.'s
    $\frac{1}{15}\big[12(y_n - y_{n+1}) + 6h(F_n + F_{n+1})\big]$, which is $O(h^3)$, so
    `error_order` is 3 (with `order` 2).

    This differs from `rkc.f` in that:

    1. $\rho$ is refreshed every `refresh_every` accepted steps (`rkc.f`: 25) — but diffrax
       discards the solver state of a rejected step, so the solver cannot "refresh after a
       rejection". Instead every step checks itself: the secant ratio
       $\|F_{n+1} - F_n\| / \|y_{n+1} - y_n\|$ is a lower bound on $\rho$, and an unstable step
       (a stale, too small $\hat\rho$) is dominated by the modes it amplifies, so this ratio
       then exceeds the estimate. When it does, $\rho$ is re-estimated (power iterations seeded
       with $y_{n+1} - y_n$, which is rich in those modes) and the step is redone, once.
    2. Steps needing more than `max_stages` stages are rejected with an infinite error (the
       controller then shrinks the step); diffrax's controller cannot be told a maximum step
       size that changes with $\rho$, i.e. $h \le ((s_{max} - 1)^2 - 1) / (1.54\,\hat\rho)$.

    Work is counted in the solver state (accepted steps only, since rejected state is
    discarded): `num_vf` vector-field evaluations, `num_jvp` Jacobian-vector products (about
    2–3 gradients each), `num_redo` redone steps.

    **Arguments:**

    - `safety`: factor applied to the estimated spectral radius (default 1.2).
    - `refresh_every`: accepted steps between spectral-radius refreshes (default 25).
    - `power_iters`: power iterations per refresh, warm-started (default 3).
    - `init_power_iters`: power iterations at the start (default 20).
    - `max_stages`: stage cap (default 200).
    """

    safety: float = 1.2
    refresh_every: int = 25
    power_iters: int = 3
    init_power_iters: int = 20
    max_stages: int = 200

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation
    )

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    # -- spectral radius -------------------------------------------------------------------

    def _stages(self, rho, h):
        s_float = 1.0 + jnp.floor(jnp.sqrt(1.0 + 1.54 * jnp.abs(h) * self.safety * rho))
        too_many = s_float > self.max_stages
        return jnp.minimum(s_float, self.max_stages).astype(jnp.int32), too_many

    # -- one Chebyshev step ----------------------------------------------------------------

    def _chebyshev(self, terms, t0, t1, y0, f0, args, s):
        control = terms.contr(t0, t1)
        hf0 = terms.prod(f0, control)
        dtype = jnp.result_type(float)
        sf = s.astype(dtype)
        w0 = 1.0 + DAMPING / (sf * sf)
        w1 = _w1(sf, w0)
        b1 = 1.0 / (2.0 * w0) ** 2
        mus1 = w1 * b1
        y1 = _lin([1.0, mus1], [y0, hf0])
        h = t1 - t0
        one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
        # carry: j, y_{j-1}, y_{j-2}, θ_{j-1}, θ_{j-2}, b_{j-1}, b_{j-2}, z, z', z'' at j-1, j-2
        init = (jnp.asarray(2, jnp.int32), y1, y0, mus1, zero, b1, b1)
        init = init + (w0, one, one, zero, zero, zero)

        def body(c):
            j, yjm1, yjm2, thjm1, thjm2, bjm1, bjm2, zjm1, zjm2, dzjm1, dzjm2, d2zjm1, d2zjm2 = c
            zj = 2.0 * w0 * zjm1 - zjm2
            dzj = 2.0 * w0 * dzjm1 - dzjm2 + 2.0 * zjm1
            d2zj = 2.0 * w0 * d2zjm1 - d2zjm2 + 4.0 * dzjm1
            bj = d2zj / (dzj * dzj)
            ajm1 = 1.0 - zjm1 * bjm1
            mu = 2.0 * w0 * bj / bjm1
            nu = -bj / bjm2
            mus = mu * w1 / w0
            fj = terms.vf(t0 + h * thjm1, yjm1, args)
            hdf = terms.prod(_lin([1.0, -ajm1], [fj, f0]), control)
            yj = _lin([mu, nu, 1.0 - mu - nu, mus], [yjm1, yjm2, y0, hdf])
            thj = mu * thjm1 + nu * thjm2 + mus * (1.0 - ajm1)
            return (j + 1, yj, yjm1, thj, thjm1, bj, bjm1, zj, zjm1, dzj, dzjm1, d2zj, d2zjm1)

        out = jax.lax.while_loop(lambda c: c[0] <= s, body, init)
        y_new = out[1]
        f_new = terms.vf(t1, y_new, args)
        return y_new, f_new

    # -- diffrax interface -----------------------------------------------------------------

    def init(self, terms, t0, t1, y0, args):
        f0 = terms.vf(t0, y0, args)
        rho, v = power_iteration(terms, t0, y0, args, random_unit(y0), self.init_power_iters)
        i32 = lambda n: jnp.asarray(n, jnp.int32)
        counts = {
            "num_vf": i32(1),
            "num_jvp": i32(self.init_power_iters),
            "num_redo": i32(0),
            "num_stages_max": i32(0),
        }
        return f0, rho, v, jnp.asarray(0, jnp.int32), counts

    @traced_once  # (diffrax traces `step` three times: `traced.py`)
    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        f0, rho, v, age, counts = solver_state
        f0 = fsal_slope(terms, t0, y0, args, f0, made_jump)
        h = t1 - t0
        n_refresh = jnp.where(age >= self.refresh_every, self.power_iters, 0)
        rho_new, v = power_iteration(terms, t0, y0, args, v, n_refresh)
        rho = jnp.where(n_refresh > 0, jnp.maximum(rho_new, 0.0), rho)
        age = jnp.where(n_refresh > 0, 0, age)

        # Up to two attempts: the second only when the first proves the estimate stale.
        def body(c):
            k, rho, v, dy, secant, stale, n_jvp, n_vf, _, _, _, _ = c
            # On a redo, seed the power iteration with y1 - y0 of the failed attempt.
            seed = jax.tree.map(lambda a, b: jnp.where(stale, a, b), dy, v)
            nseed = _norm(seed)
            seed = jax.tree.map(lambda x: x / jnp.where(nseed > 0, nseed, 1).astype(x.dtype), seed)
            n_it = jnp.where(stale, self.power_iters, 0)
            rho_p, v_p = power_iteration(terms, t0, y0, args, seed, n_it)
            rho = jnp.where(stale, jnp.maximum(rho_p, secant), rho)
            v = jax.tree.map(lambda a, b: jnp.where(stale, a, b), v_p, v)
            s, too_many = self._stages(rho, h)
            y1, f1 = self._chebyshev(terms, t0, t1, y0, f0, args, s)
            dy = _lin([1.0, -1.0], [y1, y0])
            ndy = _norm(dy)
            secant = _norm(_lin([1.0, -1.0], [f1, f0])) / jnp.where(ndy > 0, ndy, 1.0)
            stale = (k == 0) & (secant > rho) & ~too_many
            return (k + 1, rho, v, dy, secant, stale, n_jvp + n_it, n_vf + s, s, y1, f1, too_many)

        zero_i = jnp.asarray(0, jnp.int32)
        false = jnp.asarray(False)
        carry = (zero_i, rho, v, y0, jnp.zeros_like(rho), false, zero_i, zero_i, zero_i, y0, f0)
        carry = jax.lax.while_loop(lambda c: (c[0] == 0) | c[5], body, carry + (false,))
        k, rho, v, _, _, _, n_jvp, n_vf, s, y1, f1, too_many = carry

        est = _lin([0.8, -0.8], [y0, y1])
        est = _lin([1.0, 0.4], [est, terms.prod(_lin([1.0, 1.0], [f0, f1]), terms.contr(t0, t1))])
        est = jax.tree.map(lambda e: jnp.where(too_many, jnp.inf, e), est)
        control = terms.contr(t0, t1)
        dense_info = dict(y0=y0, y1=y1, k0=terms.prod(f0, control), k1=terms.prod(f1, control))
        counts = {
            "num_vf": counts["num_vf"] + n_vf,
            "num_jvp": counts["num_jvp"] + n_refresh.astype(jnp.int32) + n_jvp,
            "num_redo": counts["num_redo"] + (k - 1),
            "num_stages_max": jnp.maximum(counts["num_stages_max"], s),
        }
        return y1, est, dense_info, (f1, rho, v, age + 1, counts), dfx.RESULTS.successful

    def resync(self, state, f1, rho, v):
        """The state after steps by another method (`Auto`'s explicit mode): its slope and
        spectral-radius estimate."""
        return f1, rho, v, jnp.asarray(0, jnp.int32), state[4]

    def easy(self, h, state, to_explicit):
        """Whether `Auto` should hand back to Tsit5: two stages would do (see `Auto`)."""
        return 1.54 * jnp.abs(h) * self.safety * state[1] < to_explicit

    def work(self, solver_state) -> dict:
        """Vector-field evaluations, JVPs, redos and the most stages of the accepted steps
        (from the solver state)."""
        return dict(solver_state[4])

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
