"""Sweeps: grids, cost-aware chunks, vmap, devices, hosts and resumable storage."""

from .grid import Grid as Grid
from .plan import default_cost as default_cost
from .store import StoreError as StoreError
from .sweep import sweep as sweep
