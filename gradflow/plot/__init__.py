"""Figures (the only importer of matplotlib; `import gradflow` does not import this)."""

from .run import plot_run as plot_run
