from .gd import gd as gd
from .gd import probe_lr as probe_lr
