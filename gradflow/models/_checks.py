"""Construction checks shared by the model families."""

from __future__ import annotations

import math

from .._misc import is_tracing


def check_init_scale(init_scale, name: str = "init_scale", allow_zero: bool = False) -> None:
    """Refuse a concrete `init_scale` that is not positive (or `≥ 0`) and finite.

    Traced values (a `vmap` over init scales) are not checked.
    """
    if is_tracing(init_scale):
        return
    try:
        scale = float(init_scale)
    except TypeError:
        raise TypeError(f"`{name}` must be a positive real number, got {init_scale!r}.") from None
    ok = scale >= 0 if allow_zero else scale > 0
    if not (math.isfinite(scale) and ok):
        bound = "≥ 0" if allow_zero else "positive"
        raise ValueError(
            f"`{name}` must be {bound} and finite, got {init_scale}; use e.g. 1e-6 for a "
            "small init (zero would sit exactly on the saddle)."
        )


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return value
