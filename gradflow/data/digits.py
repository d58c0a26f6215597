r"""A small real dataset: scikit-learn's handwritten digits, PCA-whitened (no download).

scikit-learn ships the 1,797 8×8 digit images (UCI optical digits) inside the package, so this
works offline. The preprocessing makes the linear theory apply exactly:

1. keep the images of the requested `classes`;
2. centre the 64 pixels (subtract their mean over the kept images);
3. project onto the top `dim` principal components and divide each by the square root of its
   variance, so that $\Sigma_{xx} = \frac1P X^\top X = I_{dim}$ exactly (whitened);
4. targets: one-hot class indicators, centred (so no bias is needed), one output per class.

For whitened inputs a linear net sees only $\Sigma_{yx} = \frac1P Y^\top X = U S V^\top$: from a
small init it learns one singular mode per plateau (rank 0 → 1 → …), plateau levels
$\frac12\sum_{j>k}s_j^2 + L_{res}$ with the least-squares residual
$L_{res} = \frac12(\frac1P\sum\|y\|^2 - \sum_j s_j^2)$. The SVD of $\Sigma_{yx}$ (the best linear
map, without the zero mode the centring leaves) is stored as `data.teacher`, so
`gf.analysis.mode_strengths`, `effective_rank` and the `gf.theory` formulas apply.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset, LinearTeacher

#: Default classes: four digits whose Σ_yx has well-separated singular values (ratios ≈ 1.3 at
#: dim = 4; for most class sets they are within a few percent of each other, which blurs the
#: plateaus into one slow drop).
DIGITS_CLASSES = (3, 4, 8, 9)


def digits(classes=DIGITS_CLASSES, dim: int = 4) -> Dataset:
    r"""scikit-learn's 8×8 digits, a few classes, PCA-whitened to `dim` dimensions.

    **Arguments:**

    - `classes`: distinct digits in 0–9, at least two (default `(3, 4, 8, 9)`).
    - `dim`: number of principal components kept, `1 ≤ dim ≤ 64`.

    **Returns:** `Dataset(x, y, teacher)` with `x` of shape `(P, dim)` (exactly whitened),
    `y` of shape `(P, len(classes))` (centred one-hot), `teacher` the SVD of $\Sigma_{yx}$
    (rank ≤ `len(classes) − 1`). The labels of the rows are in `digit_labels(classes)`.
    """
    x_raw, labels, classes = _load(classes)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= 64:
        raise ValueError(f"`dim` must be an integer in 1..64 (principal components), got {dim!r}.")
    x = x_raw - x_raw.mean(axis=0)
    p = x.shape[0]
    evals, evecs = np.linalg.eigh(x.T @ x / p)
    order = np.argsort(evals)[::-1][:dim]
    if evals[order[-1]] <= 1e-12 * evals[order[0]]:
        raise ValueError(
            f"Only {int(np.sum(evals > 1e-12 * evals.max()))} principal components of these "
            f"classes have non-zero variance; use a smaller `dim`."
        )
    z = x @ evecs[:, order] / np.sqrt(evals[order])
    y = (labels[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
    y -= y.mean(axis=0)
    u, s, vt = np.linalg.svd(y.T @ z / p, full_matrices=False)
    keep = s > 1e-10 * s[0]
    teacher = LinearTeacher(u[:, keep], s[keep], vt[keep].T)
    return Dataset(z, y, teacher=teacher)


def digit_labels(classes=DIGITS_CLASSES) -> np.ndarray:
    """The digit of each row of `digits(classes, ...)`, shape `(P,)`."""
    return _load(classes)[1]


def _load(classes):
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a runtime dependency
        raise ImportError(
            "gf.data.digits needs scikit-learn (it ships the data): pip install scikit-learn"
        ) from err
    classes = tuple(int(c) for c in np.atleast_1d(np.asarray(classes)))
    if (
        len(classes) < 2
        or len(set(classes)) != len(classes)
        or not all(0 <= c <= 9 for c in classes)
    ):
        raise ValueError(
            f"`classes` must be at least two distinct digits in 0..9, got {classes!r}."
        )
    x, labels = load_digits(return_X_y=True)
    mask = np.isin(labels, classes)
    return np.asarray(x[mask], np.float64), labels[mask], classes
