"""Architectures (`gf.models`), one family per module, and init schemes (`gf.models.init`)."""

from . import init as init
from .deep_linear import DeepLinear as DeepLinear
