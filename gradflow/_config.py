"""Configuration of `gradflow run`: typed dataclasses, TOML in, TOML out, checked before compute.

Every key has a default (the embedded default experiment), so a config file only lists what
it changes. Unknown keys, wrong types and out-of-range values raise `ConfigError` with the
key's full name and the fix; the CLI turns that into one line and exit code 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and the fix."""


@dataclass
class TeacherConfig:
    #: input–output singular values s_k of the teacher (distinct, with clear gaps)
    singular_values: list[float] = field(default_factory=lambda: [4.0, 2.0, 1.0, 0.5])
    #: input / output dimension (default: number of singular values)
    in_size: int | None = None
    out_size: int | None = None
    #: random orthogonal singular vectors (False: the identity basis)
    rotate: bool = True


@dataclass
class NetworkConfig:
    depth: int = 2
    width: int = 16
    #: std of the i.i.d. Gaussian init of every weight
    init_scale: float = 1e-6
    #: integration horizon (gradient-flow time)
    t1: float = 60.0


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


@dataclass
class GDRunConfig:
    #: optax optimizer: sgd (plain GD), momentum, nesterov, adam
    optimizer: str = "sgd"
    #: learning rate; the run's time axis is t = k·lr
    lr: float = 0.05
    #: momentum coefficient (momentum/nesterov; default 0.9)
    momentum: float | None = None
    #: mini-batch size (default: full batch)
    batch_size: int | None = None

    @property
    def label(self) -> str:
        name = "gd" if self.optimizer == "sgd" else self.optimizer
        out = f"{name} lr={self.lr:g}"
        if self.optimizer in ("momentum", "nesterov"):
            out += f" m={self.momentum if self.momentum is not None else 0.9:g}"
        if self.batch_size is not None:
            out += f" bs={self.batch_size}"
        return out


@dataclass
class GDConfig:
    #: discrete runs overlaid on each flow, same loss and init (empty list: none)
    runs: list[GDRunConfig] = field(
        default_factory=lambda: [GDRunConfig(lr=0.05), GDRunConfig(lr=0.02)]
    )


@dataclass
class RunConfig:
    #: experiment kind: deep_linear (this table), or diagonal, quadratic, relu_three_points,
    #: attention_merged, attention_separate (their keys: `gradflow run --preset NAME
    #: --print-config`)
    experiment: str = "deep_linear"
    seed: int = 0
    #: solver name: auto (Tsit5, switching to RKC while stiff), tsit5, rkc, dopri8, kvaerno5, ...
    solver: str = "auto"
    rtol: float = 1e-6
    #: absolute tolerance (default: derived from the init, below the init scale)
    atol: float | None = None
    save_points: int = 200
    max_steps: int = 1_000_000
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    networks: list[NetworkConfig] = field(
        default_factory=lambda: [
            NetworkConfig(depth=2, width=16, init_scale=1e-6, t1=60.0),
            NetworkConfig(depth=3, width=16, init_scale=1e-2, t1=300.0),
        ]
    )
    gd: GDConfig = field(default_factory=GDConfig)


_POSITIVE = {"rtol", "atol", "init_scale", "t1", "lr", "singular_values", "init_scales"}
_POSITIVE |= {"horizon", "eigenvalues"}
_AT_LEAST_ONE = {"depth", "width", "in_size", "out_size", "save_points", "max_steps", "batch_size"}
_AT_LEAST_ONE |= {"n", "d", "k", "dim", "context", "heads"}


def _check_value(name: str, key: str, value):
    if key in _POSITIVE:
        vals = value if isinstance(value, list) else [value]
        for v in vals:
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be finite and > 0, got {value!r}.")
    if key in _AT_LEAST_ONE and value is not None and value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value!r}.")
    if key == "save_points" and value < 2:
        raise ConfigError(f"{name} must be >= 2, got {value!r}.")
    if key == "singular_values" and len(value) == 0:
        raise ConfigError(f"{name} must list at least one singular value.")
    if key == "optimizer" and value not in OPTIMIZERS:
        raise ConfigError(
            f"{name} = {value!r} is unknown. Valid optimizers: {', '.join(OPTIMIZERS)}."
        )
    if key == "momentum" and value is not None and not (0 <= value < 1):
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}.")
    if key == "seed" and not (0 <= value < 2**32):
        raise ConfigError(f"{name} must be an integer in [0, 2**32), got {value!r}.")
    if key in ("init_scales", "eigenvalues") and len(value) == 0:
        raise ConfigError(f"{name} must list at least one value.")
    if key == "networks" and len(value) == 0:
        raise ConfigError(f"{name} must list at least one [[networks]] table.")


def _coerce(name: str, tp, value):
    """Check `value` against the annotation `tp`, converting ints to floats where allowed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(name, a, value)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, got {type(value).__name__} {value!r}.")
        return [_coerce(f"{name}[{i}]", item, v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a table, got {type(value).__name__}.")
        return _build(tp, value, name)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {type(value).__name__} {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {type(value).__name__} {value!r}.")
        return value
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover


def _build(cls, table: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(names)
            raise ConfigError(f"unknown key {full!r}.{hint} Valid keys here: {valid}.")
        kwargs[key] = _coerce(full, hints[key], value)
        _check_value(full, key, kwargs[key])
    return cls(**kwargs)


def check_shared(cfg) -> None:
    """Checks shared by `gradflow run` and `gradflow sweep` configs: solver name, teacher sizes."""
    from ._flow.options import SOLVERS

    if cfg.solver.lower() not in SOLVERS:
        raise ConfigError(
            f"solver {cfg.solver!r} is unknown. Valid names: {', '.join(sorted(SOLVERS))}."
        )
    if not isinstance(getattr(cfg, "teacher", None), TeacherConfig):  # other kinds
        return
    r = len(cfg.teacher.singular_values)
    for key in ("in_size", "out_size"):
        v = getattr(cfg.teacher, key)
        if v is not None and v < r:
            raise ConfigError(f"teacher.{key} = {v} is smaller than the {r} singular values.")


def from_dict(table: dict):
    """Build and validate a run config from a (TOML-parsed) dict.

    The `experiment` key picks the schema: `RunConfig` for deep_linear (the default), else the
    kind's table in `gradflow._experiments.configs`.
    """
    from ._experiments.configs import CONFIGS

    kind = table.get("experiment", "deep_linear")
    if not isinstance(kind, str):
        raise ConfigError(f"experiment must be a string, got {type(kind).__name__} {kind!r}.")
    valid = ("deep_linear", *CONFIGS)
    if kind not in valid:
        close = difflib.get_close_matches(kind, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"experiment = {kind!r} is unknown.{hint} Valid: {', '.join(valid)}.")
    cfg = _build(RunConfig if kind == "deep_linear" else CONFIGS[kind], table)
    check_shared(cfg)
    return cfg


def read_toml(path: str | Path) -> dict:
    """The table of a TOML config file, or a `ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist.")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}).") from None


def load(path: str | Path) -> RunConfig:
    """Read a TOML config file (missing keys take the defaults)."""
    return from_dict(read_toml(path))


def to_dict(cfg) -> dict:
    """A config dataclass as a plain dict (None values dropped: TOML has no null)."""

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if v is not None}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(dataclasses.asdict(cfg))


def dumps(cfg) -> str:
    """A config dataclass (run or sweep) as TOML."""
    return tomli_w.dumps(to_dict(cfg))
