"""The architecture zoo: one saddle-to-saddle staircase per architecture, with its complexity.

For each architecture of Zhang, Saxe & Latham (THEORY.md §1) this builds the small-init model
and a teacher, runs the exact gradient flow with the complexity measure of
`gf.analysis.complexity` (rank, rays, kernels, active units, heads, support) and the unit sizes
it thresholds recorded as metrics, counts the plateaus of the loss with `gf.analysis.plateaus`
and checks that the complexity rises by one per plateau up to the teacher's count:

| name | model | teacher / loss | complexity |
|---|---|---|---|
| linear | two-layer linear, 3 → 3 | whitened linear teacher s = (4, 2, 1.25) | rank |
| relu | two-layer ReLU, 2-D input | two orthogonal inputs, targets (1, -0.4) | rays |
| relu_kinks | two-layer ReLU, hidden bias, 1-D input | y = 2 relu(x) - relu(-x - 1/4) | kinks |
| conv | linear 1-D conv, stride = kernel size | whitened conv teacher, strengths (2, 1) | rank |
| relu_conv | ReLU 1-D conv, stride = kernel | ReLU conv teacher (3, 1), exact Gauss. loss | rays |
| conv2d | linear 2-D conv, 2×2 kernels, stride 2 | whitened 4×4 images, strengths (2, 1) | rank |
| quadratic | two-layer, φ(z) = z² | y = xᵀTx, T = diag(2, -1), exact Gaussian loss | units |
| xtanh | two-layer, φ(z) = z tanh z | two orthogonal x tanh x teacher units | active units |
| attention_separate | linear attention, rank-1 K, Q | in-context regression, population | heads |
| attention_merged | linear attention, merged KQ | same task | rank of Σ v_i U_i |
| tanh | two-layer tanh | two orthogonal tanh teacher units | σ1/σ2 of W (a ratio) |
| diagonal | diagonal linear, β = u ⊙ v | sparse regression, 2 non-zeros (1, ±0.5) | support size |

Merged-KQ attention and tanh are the counter-examples of THEORY.md §1.8: a single drop, no
intermediate plateau (merged attention jumps from rank 0 to full rank at once; tanh has a
rank-one first layer early but no saddle to rest at).

Run: `python examples/architectures.py [--out DIR] [--which quadratic,attention_merged]
[--tiny]`. It prints one table row per architecture and writes `DIR/<name>.png`: the loss
against log time on top, the complexity staircase below, and the thresholded unit sizes
(singular values, unit norms or |β_i|) at the bottom; for the 2-D-input nets (relu, quadratic,
xtanh, tanh) also `DIR/<name>_units.png`, the first-layer weights as points in the plane
(rays for ReLU) in the middle of each plateau and at the end (`gf.plot.plot_unit_snapshots`).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time as _time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf

ALL = (
    "linear",
    "relu",
    "relu_kinks",
    "conv",
    "relu_conv",
    "conv2d",
    "quadratic",
    "xtanh",
    "attention_separate",
    "attention_merged",
    "tanh",
    "diagonal",
)
#: A unit (mode, ray, kernel, head, coordinate) counts once its size exceeds TAU (and a tenth
#: of the largest): a tenth of the O(1) scale of every teacher here. The alternative
#: `reference=model0` (ten times the init) is crossed early on the initial plateau when sizes
#: grow exponentially (Type I/II: e^{2st} from ε² needs only ln(10)/(2s) to grow tenfold).
TAU = 0.1
#: Plateaus whose levels differ by less than this fraction of the total drop are one plateau
#: (`gf.analysis.plateaus(merge=...)`): the slow tail of tanh after its drop is not a stage.
MERGE = 0.05
#: The counter-examples: one drop, no intermediate plateau.
SINGLE_DROP = ("attention_merged", "tanh")
#: Kink positions of the `relu_kinks` teacher y = 2 relu(x) - relu(-x - 1/4).
RELU_KINKS = (0.0, -0.25)
#: Cosine above which two ReLU conv kernels share a ray. The teacher's kernels are orthogonal;
#: the extra kernels that join a ray late converge onto it slowly (a power law), so the
#: default 0.99 would count them as rays of their own for a while.
RAY_COS = 0.95


@dataclasses.dataclass
class Setup:
    """One architecture: model at init, data, loss, horizon and the teacher's complexity."""

    model: eqx.Module
    data: object
    loss: Callable
    t1: float
    expected: float  # the teacher's complexity (nan: no count, e.g. tanh)
    description: str
    rtol: float = 1e-6
    solver: str | None = None  # None: the default ("auto")
    metric_kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Result:
    name: str
    sol: object
    table: gf.analysis.PlateauTable
    plateau_complexity: np.ndarray  # complexity on each plateau (median over its saves)
    final: float
    expected: float
    staircase: bool  # plateau k has complexity k and the final count is the teacher's
    single_drop: bool  # two plateaus (initial and final) at most
    seconds: float

    @property
    def num_plateaus(self) -> int:
        return len(self.table)


def _teacher_data(activation, directions, strengths, num, key):
    """Gaussian inputs labelled by a two-layer `activation` teacher with the given units."""
    w = np.asarray(directions, float)
    x = np.asarray(jax.random.normal(key, (num, w.shape[1]), jnp.float64))
    teacher = gf.models.TwoLayer(w.shape[1], w.shape[0], 1, activation, init_scale=1.0, key=key)
    teacher = eqx.tree_at(
        lambda m: (m.w, m.a), teacher, (jnp.asarray(w), jnp.asarray(strengths, float)[None, :])
    )
    return gf.Dataset(x, np.asarray(jax.vmap(teacher)(x)))


def _relu_conv_teacher(length, kernel_size, strengths, key):
    """A ReLU conv teacher: orthonormal kernels, kernel h read out at position h only."""
    h = len(strengths)
    q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (kernel_size, h), jnp.float64)))
    teacher = gf.models.Conv1D(length, h, kernel_size, 1, "relu", 1.0, stride=kernel_size, key=key)
    readout = np.eye(h, teacher.positions) * np.asarray(strengths, float)[:, None]
    return eqx.tree_at(
        lambda m: (m.kernels, m.readout), teacher, (jnp.asarray(q.T), jnp.asarray(readout)[None])
    )


def _conv2d_teacher_data(side, kernel_size, strengths, key):
    """Exactly whitened images (P = side² examples) labelled by a linear Conv2D teacher with
    orthonormal kernels and readouts: at stride = kernel size the windows are whitened too, so
    L = ½‖M* − M‖² with the singular values of M* = `strengths` (Type I)."""
    h, p = len(strengths), side * side
    k_x, k_k, k_r = jax.random.split(key, 3)
    x = np.sqrt(p) * np.linalg.qr(np.asarray(jax.random.normal(k_x, (p, p), jnp.float64)))[0]
    teacher = gf.models.Conv2D(side, h, kernel_size, 1, "linear", 1.0, stride=kernel_size,
                               key=key)  # fmt: skip
    kernels = np.linalg.qr(np.asarray(jax.random.normal(k_k, (kernel_size**2, h))))[0].T
    readout = np.linalg.qr(np.asarray(jax.random.normal(k_r, (teacher.positions, h))))[0].T
    readout = readout * np.asarray(strengths, float)[:, None]
    teacher = eqx.tree_at(
        lambda m: (m.kernels, m.readout), teacher,
        (jnp.asarray(kernels), jnp.asarray(readout)[None]),
    )  # fmt: skip
    return gf.Dataset(x, np.asarray(jax.vmap(teacher)(jnp.asarray(x))))


def build(name: str, tiny: bool = False, seed: int = 0) -> Setup:
    """The model at init, data, loss and horizon of one architecture (`tiny`: smaller, faster)."""
    k_data, k_model = jax.random.split(jax.random.key(seed))
    mse = gf.losses.mse
    if name == "linear":
        s = [4.0, 2.0, 1.25]
        width, eps = (4, 1e-8) if tiny else (16, 1e-8)
        data = gf.data.linear_teacher(s, key=k_data)
        model = gf.models.TwoLayer(3, width, 3, "linear", init_scale=eps, key=k_model)
        return Setup(model, data, mse, 30.0, len(s), f"linear FC, width {width}, s = {s}")
    if name == "relu":
        targets = (1.0, -0.4)
        width, eps = (6, 1e-4) if tiny else (20, 1e-6)
        data = gf.data.orthogonal_relu_data(targets)
        model = gf.models.TwoLayer(2, width, 1, "relu", init_scale=eps, key=k_model)
        return Setup(
            model, data, mse, 150.0, len(targets), f"ReLU FC, width {width}, targets {targets}"
        )
    if name == "relu_kinks":
        # Two kinks with slopes of different size and sign: each is its own ReLU ray, the
        # steeper one (kink 0, slope 2, a > 0) escapes first, then the one at -1/4 (slope -1,
        # a < 0). Kinks count among grown units, inside the data range
        # (`complexity` receives the data).
        num = 12 if tiny else 20
        x = np.linspace(-1.0, 1.0, num)
        data = gf.Dataset(x, 2.0 * np.maximum(x, 0.0) - np.maximum(-x - 0.25, 0.0))
        width, eps = (8, 1e-12) if tiny else (20, 1e-12)
        model = gf.models.TwoLayer(1, width, 1, "relu", bias=True, init_scale=eps, key=k_model)
        return Setup(
            model, data, mse, 1000.0, len(RELU_KINKS),
            f"ReLU FC with bias, width {width}, {num} points, kinks at {RELU_KINKS}",
            solver="tsit5" if tiny else None,
        )  # fmt: skip
    if name == "conv":
        strengths = [2.0, 1.0]
        kernels, eps = (3, 1e-6) if tiny else (8, 1e-6)
        data = gf.data.conv_teacher(8, 4, strengths, key=k_data)
        model = gf.models.Conv1D(8, kernels, 4, 1, "linear", eps, stride=4, key=k_model)
        return Setup(
            model, data, mse, 60.0, len(strengths),
            f"linear conv, {kernels} kernels of size 4, strengths {strengths}",
        )  # fmt: skip
    if name == "relu_conv":
        # The exact Gaussian-input loss (arc-cosine kernel, windows independent at stride =
        # kernel size): a smooth flow of a few hundred steps. On sampled signals the same
        # staircase appears, but the flow slides along activation boundaries (a pre-activation
        # pinned at 0 on a data point) and takes ~3e4 Tsit5 steps; whether the staircase is
        # clean then also depends on the sample.
        strengths = [3.0, 1.0]
        kernels = 4 if tiny else 8
        teacher = _relu_conv_teacher(8, 4, strengths, k_data)
        model = gf.models.Conv1D(8, kernels, 4, 1, "relu", 1e-8, stride=4, key=k_model)
        return Setup(
            model, teacher, gf.data.relu_population_loss, 300.0, len(strengths),
            f"ReLU conv, {kernels} kernels of size 4, exact Gaussian loss, teacher: "
            f"orthonormal kernels, strengths {strengths}",
            solver="tsit5" if tiny else None, metric_kwargs={"cos": RAY_COS},
        )  # fmt: skip
    if name == "conv2d":
        strengths = [2.0, 1.0]
        kernels = 3 if tiny else 8
        data = _conv2d_teacher_data(4, 2, strengths, k_data)
        model = gf.models.Conv2D(4, kernels, 2, 1, "linear", 1e-6, stride=2, key=k_model)
        return Setup(
            model, data, mse, 60.0, len(strengths),
            f"linear 2-D conv, {kernels} kernels 2×2, stride 2, 4×4 whitened images, "
            f"strengths {strengths}", solver="tsit5" if tiny else None,
        )  # fmt: skip
    if name == "quadratic":
        t = jnp.diag(jnp.array([2.0, -1.0]))
        width, eps = (4, 1e-2) if tiny else (10, 1e-3)
        model = gf.models.TwoLayer(2, width, 1, "quadratic", init_scale=eps, key=k_model)
        return Setup(
            model, t, gf.data.quadratic_population_loss, 120.0 if tiny else 5000.0,
            int(np.linalg.matrix_rank(np.asarray(t))),
            f"quadratic, width {width}, T = diag(2, -1), exact Gaussian loss", rtol=1e-8,
        )  # fmt: skip
    if name in ("xtanh", "tanh"):
        strengths = [2.0, -1.0] if name == "xtanh" else [2.0, 1.0]
        num = 64 if tiny else 200
        data = _teacher_data(name, np.eye(2), strengths, num, k_data)
        width, eps = (4, 1e-2) if tiny else (10, 1e-3)
        if name == "tanh":
            eps = 1e-3 if tiny else 1e-5
        model = gf.models.TwoLayer(2, width, 1, name, init_scale=eps, key=k_model)
        t1 = {"xtanh": 200.0 if tiny else 40_000.0, "tanh": 200.0}[name]
        expected = len(strengths) if name == "xtanh" else np.nan
        return Setup(
            model, data, mse, t1, expected,
            f"{name}, width {width}, teacher: 2 orthogonal units {strengths}, {num} samples",
            rtol=1e-8,
        )  # fmt: skip
    if name in ("attention_separate", "attention_merged"):
        dim = 3 if tiny else 4
        lam = gf.data.icl_eigenvalues(dim)
        task = gf.data.InContextTask(lam, 31)
        heads = dim
        if name == "attention_separate":
            eps = 1e-2
            model = gf.models.SeparateAttention(dim, heads, 1, eps, key=jax.random.key(seed))
            t1 = 40_000.0
        else:
            eps = 1e-3
            model = gf.models.MergedAttention(dim, heads, eps, key=k_model)
            t1 = 2_000.0
        return Setup(
            model, task, gf.data.in_context_population_loss, t1, dim,
            f"{name.replace('_', ' ')}, D = {dim}, N = 31, {heads} heads, Λ ∝ ({dim}, …, 1)",
            rtol=1e-8,
        )  # fmt: skip
    if name == "diagonal":
        n, d, k = (30, 5, 2) if tiny else (60, 8, 2)
        alpha = 1e-6 if tiny else 1e-10
        data = gf.data.sparse_regression(n, d, k, key=k_data)
        beta = np.asarray(data.teacher.matrix())[0]
        model = gf.models.DiagonalLinear(d, alpha)
        return Setup(
            model, data, mse, 200.0, int(np.sum(np.abs(beta) > 1e-12)),
            f"diagonal linear, d = {d}, n = {n}, {k}-sparse β*, α = {alpha:g}", rtol=1e-8,
        )  # fmt: skip
    raise ValueError(f"Unknown architecture {name!r}; valid names: {', '.join(ALL)}.")


def run(name: str, tiny: bool = False, save: int = 200) -> Result:
    """Flow one architecture, count its plateaus and read the complexity on each."""
    start = _time.perf_counter()
    setup = build(name, tiny)
    metrics = {
        "complexity": gf.analysis.complexity_metric(**{"abs_": TAU, **setup.metric_kwargs}),
        "sizes": lambda m, d: gf.analysis.unit_sizes(m),
    }
    sol = gf.flow(
        setup.model, setup.data, loss=setup.loss, t1=setup.t1, rtol=setup.rtol, save=save,
        metrics=metrics, progress=False, solver=setup.solver, save_params=_planar(setup.model),
    )  # fmt: skip
    if sol.status != "success":
        raise RuntimeError(f"{name}: the flow ended with status {sol.status!r}.")
    table = gf.analysis.plateaus(sol, merge=MERGE)
    t, c = np.asarray(sol.t), np.asarray(sol.metrics["complexity"], float)
    on = [c[(t >= a) & (t <= b)] for a, b in zip(table.start, table.end)]
    per_plateau = np.array([np.median(x) if x.size else np.nan for x in on])
    final = float(c[-1])
    staircase = bool(
        np.array_equal(per_plateau, np.arange(len(table)))
        and final == setup.expected
        and len(table) == setup.expected + 1
    )
    return Result(
        name, sol, table, per_plateau, final, setup.expected, staircase, len(table) <= 2,
        _time.perf_counter() - start,
    )  # fmt: skip


def _planar(model) -> bool:
    """2-D-input two-layer nets get unit pictures (their weights are saved along the flow)."""
    return isinstance(model, gf.models.TwoLayer) and model.in_size == 2


def draw_units(result: Result, path) -> None:
    """First-layer weights as points (rays for ReLU) mid-plateau and at the end."""
    from gradflow.plot import plot_unit_snapshots

    table = result.table
    times = [*np.sqrt(table.start * table.end)[:-1], float(result.sol.t_final)]
    plot_unit_snapshots(
        result.sol, times, path, rays=result.sol.model.activation == "relu",
        suptitle=f"{result.name}: first-layer weights on each plateau (size: |readout|)",
    )  # fmt: skip


def draw(result: Result, setup_description: str, path) -> None:
    import matplotlib.pyplot as plt

    from gradflow.plot import run as _  # noqa: F401  (selects the Agg backend)

    sol = result.sol
    t = np.asarray(sol.t)
    ok = t > 0
    fig, (ax, axc, axu) = plt.subplots(
        3, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2]}
    )
    ax.plot(t[ok], np.asarray(sol.loss)[ok], lw=2)
    for k in range(result.num_plateaus):
        ax.axvspan(result.table.start[k], result.table.end[k], color="0.9", zorder=0)
    ax.set(xscale="log", ylabel="loss", title=f"{result.name}: {setup_description}")
    ax.title.set_fontsize(8)
    c = np.asarray(sol.metrics["complexity"], float)
    axc.step(t[ok], c[ok], where="post", lw=2, color="C3")
    if np.isfinite(result.expected):
        axc.axhline(result.expected, color="k", ls="--", lw=1, label="teacher")
        axc.legend(loc="upper left", fontsize=8)
    label = "σ1/σ2 of W" if result.name == "tanh" else "complexity"
    axc.set(ylabel=label)
    sizes = np.asarray(sol.metrics["sizes"], float).reshape(t.size, -1)
    axu.plot(t[ok], sizes[ok], lw=1)
    axu.set(xscale="log", yscale="log", xlabel="time", ylabel="unit sizes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None, *, which=ALL, tiny=False):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="architectures", help="figure directory")
    parser.add_argument("--which", default=None, help="comma-separated architectures")
    parser.add_argument("--tiny", action="store_true", help="small sizes (seconds)")
    args = parser.parse_args(argv)
    names = tuple(args.which.split(",")) if args.which else tuple(which)
    tiny = tiny or args.tiny
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = {}
    head = (
        f"{'architecture':<20} {'plateaus':>8} {'on plateaus':>14} {'final':>7} "
        f"{'expected':>8}  {'staircase (+1 per plateau)':<27} {'time':>6}"
    )
    print(head)
    print("-" * len(head))
    for name in names:
        res = run(name, tiny)
        draw(res, build(name, tiny).description, out / f"{name}.png")
        if _planar(res.sol.model):
            draw_units(res, out / f"{name}_units.png")
        results[name] = res
        if name in SINGLE_DROP:
            verdict = ("single drop" if res.single_drop else "NOT a single drop") + " (expected)"
        else:
            verdict = "yes" if res.staircase else "NO"
        steps = ",".join(f"{x:g}" for x in res.plateau_complexity)
        exp = "—" if not np.isfinite(res.expected) else f"{res.expected:g}"
        print(
            f"{name:<20} {res.num_plateaus:>8} {steps:>14} {res.final:>7.3g} {exp:>8}  "
            f"{verdict:<27} {res.seconds:>5.1f}s"
        )
    print(f"wrote {len(results)} figures into {out}/")
    return results


if __name__ == "__main__":
    main()
