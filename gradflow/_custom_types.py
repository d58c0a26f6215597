"""Type aliases shared across gradflow (kept in one place, diffrax style)."""

from typing import Any

PyTree = Any
Scalar = Any
