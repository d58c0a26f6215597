"""Figures (the only importer of matplotlib; `import gradflow` does not import this)."""

from .run import plot_run as plot_run
from .sweep import plot_losses as plot_losses
from .sweep import plot_phase as plot_phase
from .sweep import plot_sweep as plot_sweep
from .sweep import plot_width_gamma as plot_width_gamma
from .units import plot_unit_snapshots as plot_unit_snapshots
from .units import plot_units as plot_units
