"""Per-member variables of a solved chunk: the record split at the final state, and a plateau
summary of each loss curve (`gf.analysis.plateaus`, on numpy arrays)."""

from __future__ import annotations

import numpy as np

from ..analysis.plateaus import plateaus

#: plateau levels and drop times kept per member (the count itself is not capped)
MAX_PLATEAUS = 8


def plateau_summary(ts: np.ndarray, loss: np.ndarray, t_final: float) -> dict:
    """Count, levels, drop times and first escape time of one member's loss record."""
    t = np.concatenate([ts, [t_final]])
    out = {
        "plateau_count": np.int64(0),
        "first_escape_time": np.nan,
        "plateau_level": np.full(MAX_PLATEAUS, np.nan),
        "plateau_drop": np.full(MAX_PLATEAUS, np.nan),
    }
    try:
        table = plateaus(t=t, loss=loss)
    except ValueError:  # fewer than 4 saved points (e.g. diverged at once)
        return out
    k = min(len(table), MAX_PLATEAUS)
    out["plateau_count"] = np.int64(len(table))
    out["plateau_level"][:k] = table.level[:k]
    out["plateau_drop"][:k] = table.drop[:k]
    if len(table) > 1:
        out["first_escape_time"] = float(table.drop[0])
    return out


def chunk_variables(out: dict[str, np.ndarray], ts: np.ndarray) -> dict[str, np.ndarray]:
    """Split the solver output of a chunk into the stored per-member variables."""
    n = out["loss"].shape[0]
    v = {
        "loss": out["loss"][:, :-1],
        "final_loss": out["loss"][:, -1],
        "t_final": out["t_final"],
        "status_code": out["status_code"].astype(np.int8),
        "num_steps": out["num_steps"].astype(np.int64),
        "num_rejected": out["num_rejected"].astype(np.int64),
        "num_grad_evals": out["num_grad_evals"].astype(np.int64),
    }
    if "crossing_time" in out:
        v["crossing_time"] = out["crossing_time"]
    for k, x in out.items():
        if k.startswith("metric:"):
            name = k.split(":", 1)[1]
            v[name] = x[:, :-1]
            v[f"final_{name}"] = x[:, -1]
    rows = [plateau_summary(ts, out["loss"][i], float(out["t_final"][i])) for i in range(n)]
    for k in rows[0]:
        v[k] = np.stack([r[k] for r in rows])
    return v
