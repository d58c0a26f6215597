from .gd import gd as gd, probe_lr as probe_lr
