"""Architectures (`gf.models`), one family per module, and init schemes (`gf.models.init`)."""

from . import init as init
from . import init_extra as init_extra
from .attention import MergedAttention as MergedAttention
from .attention import SeparateAttention as SeparateAttention
from .attention import SoftmaxAttention as SoftmaxAttention
from .conv import Conv1D as Conv1D
from .conv2d import Conv2D as Conv2D
from .deep_linear import DeepLinear as DeepLinear
from .deep_relu import DeepReLU as DeepReLU
from .diagonal import DiagonalLinear as DiagonalLinear
from .two_layer import TwoLayer as TwoLayer
