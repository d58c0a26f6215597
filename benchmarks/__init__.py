"""Benchmarks of gradflow's flow engine against hand-written diffrax, SciPy, GD and torchdiffeq.

Run `python -m benchmarks` (quick mode) or `python -m benchmarks --full`; see README.md.
Not part of the installed package: it lives beside it so that it can use private helpers.
"""
