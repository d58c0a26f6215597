r"""The early-time linear model of Hu, Xiao, Adlam & Pennington (2020) (THEORY.md §5).

Early in training from a large init, a two-layer net $f(x) = \sum_j a_j\,\sigma(w_j^\top x + b_j)$
moves like its linearisation, whose kernel (the NTK at init) concentrates, for nearly orthogonal
high-dimensional inputs, on a kernel that is **linear in the inputs**. With
$g = w^\top x + b \sim N(0, q)$ the preactivation at init and the Hermite coefficients
$\zeta = E[\sigma'(g)]$, $\nu = E[\sigma(g)]$ (`gf.theory.hermite_coefficients` at variance $q$),
the two terms of the NTK, $\sum_j \sigma(g_j)\sigma(g_j')$ (readout) and
$\sum_j a_j^2\sigma'(g_j)\sigma'(g_j')(x^\top x' + 1_{\rm bias})$ (first layer), become

$$K_{\rm lin}(x, x') = c_1\,x^\top x' + c_0, \qquad
c_1 = \zeta^2\big(\|a_o\|^2 + \|W\|_F^2/d\big), \qquad
c_0 = m\nu^2 + \zeta^2\big(\|b\|^2 + \|a_o\|^2 1_{\rm bias}\big)$$

(per output $o$; leading order in the input overlaps $\rho = x^\top x'/d$, without the diagonal
correction). This is the kernel of the linear model
$g_t(x) = f_0(x) + \beta_t^\top \psi(x)$, $\psi(x) = [\sqrt{c_1}\,x;\ \sqrt{c_0}]$, $\beta_0 = 0$,
trained by gradient flow on the same loss. Hu et al.'s NTK parametrisation with
$W, v \sim N(0, 1)$ is the special case $\|a\|^2 \approx 1$, $\|W\|_F^2/d \approx m/d$ after the
change of time scale between the two parametrisations; keeping $f_0$ makes both models start
at the network's initial predictions (Hu et al. compare from $f_0 \approx 0$).

The linear flow is solved in closed form: with $A = \Psi^\top\Psi/P$ and
$c = \Psi^\top(f_0(X) - Y)/P$, $\beta_t = -\sum_\lambda \frac{1 - e^{-\lambda t}}{\lambda}
v_\lambda v_\lambda^\top c$ (eigenpairs of $A$; $\lambda \to 0$ gives $t$).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..models import TwoLayer

_NUMPY_ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "quadratic": lambda z: z * z,
    "xtanh": lambda z: z * np.tanh(z),
    "cubic": lambda z: z**3,
    "tanh": np.tanh,
}


@dataclass
class EarlyLinearModel:
    r"""The linear model of a two-layer net at its init (see the module docstring).

    **Fields:** `zeta`, `nu` (Hermite coefficients at the mean preactivation variance `q`),
    `metric` (the matrices $M_o$ of the kernel $K_o(x, x') = [x; 1]^\top M_o [x'; 1]$, shape
    `(out, d + 1, d + 1)`), `model0` (the network at init, for $f_0$), the training data `x`,
    `y`, and `isotropic` (whether $M_o = \mathrm{diag}(c_1 I, c_0)$ was used).
    """

    zeta: float
    nu: float
    q: float
    metric: np.ndarray
    isotropic: bool
    model0: Any
    x: np.ndarray
    y: np.ndarray

    @property
    def c1(self) -> np.ndarray:
        """Mean diagonal of the input block of $M_o$ (the $c_1$ of Hu et al.), per output."""
        d = self.x.shape[1]
        return np.trace(self.metric[:, :d, :d], axis1=1, axis2=2) / d

    @property
    def c0(self) -> np.ndarray:
        """The constant entry of $M_o$ (the $c_0$ of Hu et al.), per output."""
        return self.metric[:, -1, -1].copy()

    def kernel(self, x, x2=None) -> np.ndarray:
        """$K_{\rm lin}(x, x')$ per output, shape `(out, n, n2)`."""
        x = _affine(x)
        x2 = x if x2 is None else _affine(x2)
        return np.einsum("ia,oab,jb->oij", x, self.metric, x2)

    def predict(self, t, x=None) -> np.ndarray:
        r"""Predictions $g_t(x)$ at times `t` (1-D) on inputs `x` (default: the training inputs).

        **Returns:** shape `(len(t), n, out)`.
        """
        t = np.atleast_1d(np.asarray(t, float))
        f0_train = _predict(self.model0, self.x)
        f0 = f0_train if x is None else _predict(self.model0, np.atleast_2d(x))
        design = _affine(self.x)
        design_eval = design if x is None else _affine(x)
        out = np.empty((t.size, len(design_eval), self.metric.shape[0]))
        p = len(design)
        for o in range(self.metric.shape[0]):
            # features ψ(x) = R [x; 1] with RᵀR = M_o (eigen square root; M_o is PSD)
            ev, ex = np.linalg.eigh(self.metric[o])
            root = (ex * np.sqrt(np.maximum(ev, 0.0))).T
            psi, psi_eval = design @ root.T, design_eval @ root.T
            lam, vec = np.linalg.eigh(psi.T @ psi / p)
            lam = np.maximum(lam, 0.0)
            c = vec.T @ (psi.T @ (f0_train[:, o] - self.y[:, o]) / p)
            # (1 - e^{-λt})/λ without cancellation, → t as λ → 0
            lt = lam[None] * t[:, None]
            phi = np.where(lt > 1e-300, -np.expm1(-lt) / np.where(lam > 0, lam, 1.0), t[:, None])
            beta = -(phi * c[None]) @ vec.T  # (len(t), features)
            out[:, :, o] = f0[None, :, o] + beta @ psi_eval.T
        return out


def _affine(x):
    x = np.atleast_2d(np.asarray(x, float))
    return np.column_stack([x, np.ones(len(x))])


def _predict(model, x):
    return np.asarray(jax.vmap(model)(jnp.asarray(x)))


def early_linear_model(model, data, *, isotropic: bool = False, activation=None):
    r"""Build the Hu et al. linear model of the two-layer `model` at its current (init) state.

    Each unit's activation is replaced by its Hermite linearisation
    $\sigma(g) \to \nu + \zeta g$, so the kernel is affine in each input,
    $K_o(x, x') = [x; 1]^\top M_o [x'; 1]$ with

    $$M_o = \sum_j \psi_j\psi_j^\top + \zeta^2\|a_o\|^2\,\mathrm{diag}(I_d, 1_{\rm bias}),
    \qquad \psi_j = (\zeta w_j,\ \nu + \zeta b_j)$$

    (readout term + first-layer term). `isotropic=True` replaces $M_o$ by its expectation over
    the random first layer, $\mathrm{diag}(c_1 I_d, c_0)$: Hu et al.'s infinite-width form,
    whose finite-width error is $O(1/\sqrt m)$ relative (the random mean activation
    $\nu\sum_j w_j$); the default keeps this init's actual $M_o$.

    **Arguments:**

    - `model`: a `gf.models.TwoLayer` (its activation picks $\sigma$).
    - `data`: the training set (the linear model is trained on it, in closed form).
    - `isotropic`: use the expected kernel coefficients $c_1$, $c_0$.
    - `activation`: override $\sigma$ by a callable on floats (default: the model's own).

    **Returns:** an [`EarlyLinearModel`][]; `predict(t)` gives its predictions over time.
    """
    from ..theory import hermite_coefficients

    if not isinstance(model, TwoLayer):
        raise TypeError(
            f"The early-time linear model is defined for gf.models.TwoLayer, got "
            f"{type(model).__name__}."
        )
    phi = _NUMPY_ACTIVATIONS[model.activation] if activation is None else activation
    if not callable(phi):
        raise TypeError(f"`activation` must be a callable on floats, got {type(phi)}.")
    x, y = np.asarray(data.x, float), np.asarray(data.y, float)
    w = np.asarray(model.w)
    a = np.asarray(model.a)
    b = np.zeros(model.width) if model.b is None else np.asarray(model.b)
    m, d = w.shape
    # mean preactivation variance over the data: Var(w_jᵀx + b_j) ≈ (‖W‖²/(m d))‖x‖² + ‖b‖²/m
    q = float(np.mean(np.sum(w**2) / (m * d) * np.sum(x**2, axis=1) + np.sum(b**2) / m))
    if not q > 0:
        raise ValueError("The model's first layer is zero: there is no linear model at init.")
    zq, nu = hermite_coefficients(lambda z: phi(np.sqrt(q) * z))
    zeta = zq / np.sqrt(q)  # Stein: E[g φ(√q g)] = √q E[φ'(√q g)]
    a_sq = np.sum(a**2, axis=1)
    first = np.concatenate([np.ones(d), [1.0 if model.bias else 0.0]])
    if isotropic:
        c1 = zeta**2 * np.sum(w**2) / d
        c0 = m * nu**2 + zeta**2 * np.sum(b**2)
        readout = np.diag(np.concatenate([np.full(d, c1), [c0]]))
    else:
        psi = np.column_stack([zeta * w, nu + zeta * b])
        readout = psi.T @ psi
    metric = readout[None] + zeta**2 * a_sq[:, None, None] * np.diag(first)[None]
    return EarlyLinearModel(float(zeta), float(nu), q, metric, bool(isotropic), model, x, y)


def predictions(model, data) -> jax.Array:
    """The model's predictions on `data.x`, shape `(P, out)`: a metric for `gf.flow`."""
    return jax.vmap(model)(data.x)


@dataclass
class LinearModelGap:
    r"""RMS difference between a network and its early linear model over time.

    - `t`: the solution's save times.
    - `rms`: $\sqrt{\mathrm{mean}_{\mu,o}(f_t(x_\mu) - g_t(x_\mu))^2}$.
    - `rms_change`: $\sqrt{\mathrm{mean}(f_t - f_0)^2}$, how far the network has moved (the
        scale `rms` is small against).
    """

    t: np.ndarray
    rms: np.ndarray
    rms_change: np.ndarray

    @property
    def relative(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.rms / self.rms_change


def linear_model_gap(solution, linear_model: EarlyLinearModel, *, key: str = "predictions"):
    r"""Compare a flow of the network with its early linear model on the same time axis.

    The network's predictions on the training inputs come from `solution.metrics[key]`
    (record them with `metrics={"predictions": gf.analysis.predictions}`) or, failing that,
    from the saved trajectory (`save_params=True`).

    **Returns:** a [`LinearModelGap`][].
    """
    t = np.asarray(solution.t, float)
    if key in (solution.metrics or {}):
        net = np.asarray(solution.metrics[key], float).reshape(t.size, len(linear_model.x), -1)
    elif getattr(solution, "trajectory", None) is not None:
        xs = jnp.asarray(linear_model.x)
        net = np.asarray(jax.vmap(lambda m: jax.vmap(m)(xs))(solution.trajectory))
    else:
        raise ValueError(
            f"The solution has neither metrics[{key!r}] nor a trajectory: run the flow with "
            "metrics={'predictions': gf.analysis.predictions} (or save_params=True)."
        )
    ok = np.isfinite(t)
    lin = np.full(net.shape, np.nan)
    lin[ok] = linear_model.predict(t[ok])
    f0 = _predict(linear_model.model0, linear_model.x)[None]
    rms = np.sqrt(np.mean((net - lin) ** 2, axis=(1, 2)))
    change = np.sqrt(np.mean((net - f0) ** 2, axis=(1, 2)))
    return LinearModelGap(t, rms, change)
