"""Config tables of the `gradflow run` experiment kinds other than the default deep linear one.

Light on purpose (no JAX): the CLI validates a config before importing the simulator. Every
kind shares the solver keys and `init_scales` (two or three values, so the table shows how the
agreement with theory improves as the init shrinks); `__post_init__` checks what the generic
schema in `gradflow._config` cannot (choices, ranges that depend on other keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .._config import ConfigError


@dataclass
class KindConfig:
    #: experiment kind (deep_linear, diagonal, quadratic, relu_three_points, attention_merged,
    #: attention_separate)
    experiment: str = ""
    seed: int = 0
    #: solver name (tsit5: these flows are not stiff; auto, dopri8, kvaerno5, ...)
    solver: str = "tsit5"
    rtol: float = 1e-8
    #: absolute tolerance (default: derived from the init, below the init scale)
    atol: float | None = None
    save_points: int = 300
    max_steps: int = 1_000_000
    #: one flow per init scale (the table shows the error at each)
    init_scales: list[float] = field(default_factory=list)
    #: integration horizon as a multiple of the predicted time of the last transition
    horizon: float = 2.0

    def _choice(self, key: str, valid: tuple[str, ...]) -> None:
        value = getattr(self, key)
        if value not in valid:
            raise ConfigError(f"{key} = {value!r} is unknown. Valid values: {', '.join(valid)}.")


@dataclass
class DiagonalConfig(KindConfig):
    """Diagonal linear network β = u ⊙ v on a sparse regression problem (THEORY §8)."""

    experiment: str = "diagonal"
    #: seed of the sparse problem (4: three well-separated jumps at n = 8, d = 6, k = 3)
    seed: int = 4
    init_scales: list[float] = field(default_factory=lambda: [1e-3, 1e-6, 1e-12])
    #: `gf.data.sparse_regression(n, d, k)`: examples, dimension, non-zeros of β*
    n: int = 8
    d: int = 6
    k: int = 3

    def __post_init__(self):
        if self.k > self.d:
            raise ConfigError(f"k = {self.k} non-zeros do not fit in dimension d = {self.d}.")


@dataclass
class QuadraticConfig(KindConfig):
    """One balanced unit of f(x) = v (uᵀx)², aligned with the top eigenvector (V5)."""

    experiment: str = "quadratic"
    #: aligned: one balanced unit u₀ = √2 v₀ e₁, v(0) = v₀ (V5); random: `width` units with
    #: i.i.d. N(0, ε²) weights
    init: str = "aligned"
    #: aligned: v₀; random: ε
    init_scales: list[float] = field(default_factory=lambda: [1e-1, 1e-2, 1e-3])
    #: diagonal of the teacher T (y = xᵀTx, x ~ N(0, I)); needs eigenvalues of both signs
    teacher: list[float] = field(default_factory=lambda: [2.0, -1.0])
    #: number of units of the random init
    width: int = 10

    def __post_init__(self):
        self._choice("init", ("aligned", "random"))
        t = self.teacher
        if len(t) < 2 or not all(math.isfinite(v) for v in t):
            raise ConfigError(f"teacher must list at least two finite values, got {t!r}.")
        lam = [sum(t) + 2 * v for v in t]
        if max(lam) <= 0:
            raise ConfigError(
                f"teacher = {t!r}: the top eigenvalue tr(T) + 2 T_11 of Σ_yZ must be > 0 "
                "(otherwise no unit escapes the origin)."
            )
        vc = (max(lam) / 6 * (1 - 1 / math.sqrt(2))) ** (1 / 3)
        for i, v in enumerate(self.init_scales if self.init == "aligned" else []):
            if v >= vc:
                raise ConfigError(
                    f"init_scales[{i}] = {v:g} is at or past the midpoint of the drop "
                    f"(v_c = {vc:.4g}); use values well below it (e.g. 1e-2)."
                )


@dataclass
class ReluConfig(KindConfig):
    """Two-layer bias-ReLU net on the Boursier–Flammarion three points (THEORY §4)."""

    experiment: str = "relu_three_points"
    #: λ of the balanced init: hidden weights and biases ~ N(0, λ²/width), |a_j| = ‖(w_j, b_j)‖
    init_scales: list[float] = field(default_factory=lambda: [1.0, 1e-1, 1e-3])
    width: int = 200
    #: gradient-flow time to integrate (the authors' 2·10⁶ GD steps at lr 1e-3 are t = 4000)
    t1: float = 4000.0


@dataclass
class AttentionMergedConfig(KindConfig):
    """Merged key–query linear attention, population loss, Λ = I (V8)."""

    experiment: str = "attention_merged"
    #: aligned: balanced init along vec(I) (V8, exact); random: i.i.d. N(0, ε²) entries
    init: str = "random"
    init_scales: list[float] = field(default_factory=lambda: [1e-2, 1e-4, 1e-6])
    dim: int = 4
    context: int = 31
    heads: int = 8

    def __post_init__(self):
        self._choice("init", ("aligned", "random"))


@dataclass
class AttentionSeparateConfig(KindConfig):
    """Separate key–query rank-1 linear attention, population loss (V9)."""

    experiment: str = "attention_separate"
    #: aligned: head i starts as k_i = q_i = e_i, v_i = v₀ (balanced), so each drop follows
    #: the scalar ODE (21) from v₀; random: i.i.d. N(0, ε²) entries (levels only)
    init: str = "aligned"
    init_scales: list[float] = field(default_factory=lambda: [3e-2, 1e-2, 3e-3])
    #: eigenvalues of the token covariance Λ (learned largest first)
    eigenvalues: list[float] = field(default_factory=lambda: [0.4, 0.3, 0.2, 0.1])
    context: int = 31
    heads: int = 4

    def __post_init__(self):
        self._choice("init", ("aligned", "random"))
        if self.init == "aligned" and self.heads < len(self.eigenvalues):
            raise ConfigError(
                f"heads = {self.heads} < {len(self.eigenvalues)} eigenvalues: the aligned init "
                "puts one head on each eigenvector; use heads >= len(eigenvalues)."
            )
        if len(set(self.eigenvalues)) != len(self.eigenvalues):
            raise ConfigError(f"eigenvalues must be distinct, got {self.eigenvalues!r}.")


CONFIGS = {
    "diagonal": DiagonalConfig,
    "quadratic": QuadraticConfig,
    "relu_three_points": ReluConfig,
    "attention_merged": AttentionMergedConfig,
    "attention_separate": AttentionSeparateConfig,
}
