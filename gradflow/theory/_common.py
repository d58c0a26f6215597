"""Input checks and small numerical helpers shared by the theory modules.

Theory depends on numpy and scipy only (never on JAX or the simulator), so these helpers
deliberately duplicate a little of `gradflow._misc` instead of importing it: a prediction must
not silently reuse the code it is meant to check.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike


def _show(arr: np.ndarray) -> str:
    """A short, readable rendering of (part of) an array for error messages."""
    flat = np.ravel(arr)
    if flat.size <= 6:
        return np.array2string(np.asarray(arr), precision=6)
    return f"array of shape {arr.shape} with min {flat.min():.6g}, max {flat.max():.6g}"


def as_float(x: ArrayLike, name: str) -> np.ndarray:
    """Convert `x` to a float64 numpy array, refusing complex, non-numeric or non-finite input."""
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        raise TypeError(f"`{name}` must be real, got a complex array; pass its real part.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be a real number or array, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got {_show(arr)}; remove NaN/inf entries.")
    return arr


def as_positive(x: ArrayLike, name: str) -> np.ndarray:
    """float64 array whose entries are all strictly positive."""
    arr = as_float(x, name)
    if np.any(arr <= 0):
        raise ValueError(f"`{name}` must be > 0, got {_show(arr)}.")
    return arr


def as_nonnegative(x: ArrayLike, name: str) -> np.ndarray:
    """float64 array whose entries are all >= 0."""
    arr = as_float(x, name)
    if np.any(arr < 0):
        raise ValueError(f"`{name}` must be >= 0, got {_show(arr)}.")
    return arr


def as_modes(s: ArrayLike, name: str = "s") -> np.ndarray:
    """1-D float64 array of strictly positive mode strengths (a scalar is one mode)."""
    arr = np.atleast_1d(as_positive(s, name))
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of mode strengths (one per singular value), "
            f"got shape {arr.shape}."
        )
    return arr


def check_strength(u: np.ndarray, s: np.ndarray, name: str, s_name: str = "s") -> None:
    """Require 0 < u < s elementwise: the sigmoids below are only defined inside (0, s)."""
    u, s = broadcast(**{name: u, s_name: s})
    bad = (u <= 0) | (u >= s)
    if np.any(bad):
        raise ValueError(
            f"`{name}` must lie strictly between 0 and `{s_name}` (the mode's final strength); "
            f"got {name}={_show(u[bad])} with {s_name}={_show(s[bad])}. A mode starting at 0 "
            f"never moves and one at or above {s_name} has no rise; choose a value in (0, "
            f"{s_name})."
        )


def as_depth(depth: object, minimum: int = 1) -> int:
    """Integer number of weight layers L >= `minimum`."""
    if (
        isinstance(depth, bool)
        or not isinstance(depth, numbers.Real)
        or not float(depth).is_integer()
        or depth < minimum
    ):
        raise ValueError(
            f"`depth` (number of weight layers L) must be an integer >= {minimum}, got {depth!r}."
        )
    return int(depth)


def broadcast(**arrays: np.ndarray) -> list[np.ndarray]:
    """`np.broadcast_arrays` with an error message that names the arguments."""
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        shapes = ", ".join(f"`{k}` {np.shape(v)}" for k, v in arrays.items())
        raise ValueError(
            f"Shapes do not broadcast: {shapes}; pass scalars or arrays of compatible shape."
        ) from None


def logit(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    r"""$x = \ln(u/(s - u))$, the variable in which every mode sigmoid is well conditioned.

    Computed as a difference of logarithms so that $u$ as small as 1e-300 causes no overflow.
    """
    return np.log(u) - np.log(s - u)


def out(arr: np.ndarray) -> np.ndarray | float:
    """Return a 0-d result as a numpy float scalar and anything else as an array."""
    return np.asarray(arr, dtype=np.float64)[()]
