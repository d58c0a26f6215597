"""A cache of the reference solutions (Dopri8 at rtol 1e-12, LSODA at 1e-10, small-lr GD).

The references are the ground truth the drop-time errors are measured against; they are not
timed, and they cost ~35 s of the quick mode's 5 minutes (the 3-layer σ = 1e-4 and wide
quadratic ones ~8–9 s each). A reference depends only on the problem and on how it is
computed, so it is kept in `results/references.json` under a key made of:

- the case (name, kind, depth, σ, T, the reference's kind and learning rate),
- the problem itself: a digest of the initial parameters' and the data's bytes and the loss
  at the init (a changed model, init, data or loss is a new key, whatever the code did),
- the jax, diffrax and numpy versions.

What is kept: the drop times, final loss, steps and status of the reference, λ_max at its
final parameters, the plateau levels measured on a GD reference's curve, and the seconds the
reference took when it was computed. `python -m benchmarks --fresh-references` recomputes
them (and rewrites their entries); runs with `--t1` neither read nor write the cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import diffrax
import jax
import numpy as np

from gradflow._io import atomic_write

PATH = Path(__file__).parent / "results" / "references.json"
FORMAT = "gradflow-bench-references/1"


def key(case, problem) -> str:
    """The cache key of `case`'s reference on `problem` (see the module docstring)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves((problem.params, problem.data)):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    desc = {
        "case": [case.name, case.kind, case.depth, case.sigma, case.t1],
        "reference": [case.reference, case.ref_lr],
        "problem": h.hexdigest(),
        "loss0": float(problem.loss(problem.model, problem.data)).hex(),
        "versions": [jax.__version__, diffrax.__version__, np.__version__],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def load(path: Path = PATH) -> dict:
    """`{key: entry}` from `path` (empty if it does not exist or is of another format)."""
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data.get("entries", {}) if data.get("format") == FORMAT else {}


def store(entries: dict, path: Path = PATH) -> None:
    """Write `entries` to `path` atomically."""
    text = json.dumps({"format": FORMAT, "entries": entries}, indent=1, sort_keys=True)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))
