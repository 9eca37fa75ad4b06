"""Search-space files (``sweeps/<dataset>.yaml``): knobs over config paths, the objective, pruner and sampler.

A space file::

    trials: 20                 # default number of trials one command adds
    epochs: 10                 # default trainer.max_epochs of every trial (optional)
    objective: acc             # acc: maximize val/acc_best | acc_latency: also minimize the mean decision step
                               #   | acc_energy: also minimize the energy per inference (val/energy_nj) |
                               #   acc_energy_exit: the same with early exit (docs/method.md section 10)
    pruner: {type: median, n_startup_trials: 3, n_warmup_steps: 1}   # median | hyperband | percentile |
                               #   successive_halving | threshold | none, with the pruner's keyword arguments
                               #   (pruning watches val/acc after every validation epoch)
    sampler: {type: tpe, seed: 0}                 # tpe | random | nsga2 | qmc (optional; Optuna's default)
    params:                    # each knob is a config path of configs/<dataset>.yaml
      model.init: {choices: [ettfs, kaiming]}
      model.init_gain: {low: 0.5, high: 4.0, log: true}
      model.T: [4, 8, 16]                         # a bare list is a choice
      data.init_args.frames: {choices: [8, 16]}   # data.frames is accepted as data.init_args.frames
      trainer.accumulate_grad_batches: {low: 1, high: 4, type: int}

A numeric knob is an int when ``low`` and ``high`` are both integers (or ``type: int``), else a float;
``log: true`` samples on a log scale, ``step`` quantizes. A knob over a network setting (``model.<field>`` of
``ttfs_lab.netconfig.NetConfig``) takes the setting's type (``model.twd_potential: {low: 0, high: 1}`` is a float)
and its values are checked by ``NetConfig`` as the file is read. Every problem is a one-line ``SpaceError`` naming
the file and the knob.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from ttfs_lab.errors import ConfigError

OBJECTIVES = ("acc", "acc_latency", "acc_energy", "acc_energy_exit")
SECOND_VALUES = {"acc_latency": "val/decision_step", "acc_energy": "val/energy_nj",  # minimized next to val/acc
                 "acc_energy_exit": "val/energy_exit_nj"}
PRUNERS = ("median", "hyperband", "percentile", "successive_halving", "threshold", "none")
SAMPLERS = ("tpe", "random", "nsga2", "qmc")
TOP_KEYS = ("trials", "epochs", "objective", "pruner", "sampler", "params")
KNOB_KEYS = ("choices", "low", "high", "log", "step", "type")
KNOB_TYPES = ("categorical", "int", "float")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
DEFAULT_TRIALS = 20


class SpaceError(ConfigError):
    """A search-space file is malformed (one line naming the file and the knob)."""


def target_path(path: str) -> str:
    """The config path a knob or ``--set`` writes: ``data.<x>`` means ``data.init_args.<x>``."""
    keys = path.split(".")
    if len(keys) >= 2 and keys[0] == "data" and keys[1] not in ("class_path", "init_args", "dict_kwargs"):
        return ".".join(["data", "init_args", *keys[1:]])
    return path


@dataclass(frozen=True)
class Knob:
    """One swept config path and its distribution."""

    name: str  # the path as written in the space file (the Optuna parameter name)
    kind: str  # categorical | int | float
    choices: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None

    @property
    def target(self) -> str:
        return target_path(self.name)

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def probe_values(self) -> list:
        """Values that exercise the knob when checking the config: every choice, or both ends of the range."""
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low)] if self.low == self.high else [cast(self.low), cast(self.high)]

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step else ""
        return f"[{self.low}, {self.high}]{scale}{step} ({self.kind})"


@dataclass
class Space:
    path: str
    knobs: list[Knob]
    trials: int = DEFAULT_TRIALS
    epochs: Optional[int] = None
    objective: str = "acc"
    pruner: dict = field(default_factory=lambda: {"type": "median"})
    sampler: Optional[dict] = None

    @property
    def multi_objective(self) -> bool:
        return self.objective in SECOND_VALUES

    @property
    def second_value(self) -> Optional[str]:
        """The metric a multi-objective study minimizes next to the accuracy (None: single objective)."""
        return SECOND_VALUES.get(self.objective)

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"] if self.multi_objective else ["maximize"]

    def knob(self, name: str) -> Knob:
        return next(k for k in self.knobs if k.name == name)


def load_space(path: str) -> Space:
    """Read and check a space file; any problem is a ``SpaceError`` naming ``path`` (and the knob)."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such search-space file; see sweeps/default.yaml") from None
    except OSError as err:
        raise SpaceError(f"{path}: cannot read the search-space file ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise SpaceError(f"{path}: not valid YAML{where} ({problem})") from None
    return parse_space(data, path)


def parse_space(data: Any, path: str = "<space>") -> Space:
    def fail(message: str):
        raise SpaceError(f"{path}: {message}")

    if not isinstance(data, dict):
        fail("expected a mapping with 'params' (and optionally trials, epochs, objective, pruner, sampler)")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        fail(f"unknown key {unknown[0]!r}; the keys are: {', '.join(TOP_KEYS)}")
    trials = data.get("trials", DEFAULT_TRIALS)
    if not _is_int(trials) or trials < 1:
        fail(f"trials={trials!r} is not valid; use a positive integer")
    epochs = data.get("epochs")
    if epochs is not None and (not _is_int(epochs) or epochs < 1):
        fail(f"epochs={epochs!r} is not valid; use a positive integer")
    objective = data.get("objective", "acc")
    if objective not in OBJECTIVES:
        fail(f"objective={objective!r} is not valid; use one of: {', '.join(OBJECTIVES)}")
    pruner = _component(data.get("pruner", "median"), "pruner", PRUNERS, fail)
    sampler = _component(data["sampler"], "sampler", SAMPLERS, fail) if data.get("sampler") is not None else None
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        fail("'params' must map config paths to distributions, e.g. model.lr: {low: 1.0e-4, high: 1.0e-2, log: true}")
    knobs, targets = [], {}
    for name, spec in params.items():
        knob = parse_knob(str(name), spec, path)
        if knob.target in targets:
            fail(f"knob {name}: sets the same config path as knob {targets[knob.target]}")
        targets[knob.target] = knob.name
        knobs.append(knob)
    space = Space(path, knobs, trials, epochs, objective, pruner, sampler)
    build_pruner(space)  # bad pruner / sampler arguments fail here, naming the file
    build_sampler(space)
    return space


def parse_knob(name: str, spec: Any, path: str = "<space>") -> Knob:
    def fail(message: str):
        raise SpaceError(f"{path}: knob {name}: {message}")

    if not _PATH.match(name):
        fail("is not a dotted config path such as model.lr or data.init_args.frames")
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        fail(f"expected {{choices: [...]}} or {{low: .., high: ..}}, got {spec!r}")
    unknown = [k for k in spec if k not in KNOB_KEYS]
    if unknown:
        fail(f"unknown key {unknown[0]!r}; a knob has choices, or low / high (with log, step, type)")
    kind = spec.get("type")
    if kind is not None and kind not in KNOB_TYPES:
        fail(f"unknown distribution type {kind!r}; use one of: {', '.join(KNOB_TYPES)}")
    if "choices" in spec:
        if kind not in (None, "categorical") or any(k in spec for k in ("low", "high", "log", "step")):
            fail("give either choices or low / high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            fail("choices must be a non-empty list")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                fail(f"choice {c!r} is not a number, string, boolean or null")
        if len({repr(c) for c in choices}) != len(choices):
            fail("choices hold a value twice")
        _check_setting_values(name, choices, fail)
        return Knob(name, "categorical", tuple(choices))
    if kind == "categorical":
        fail("type categorical needs choices")
    if "low" not in spec or "high" not in spec:
        fail("needs choices, or both low and high")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for key, value in (("low", low), ("high", high)):
        if not _is_number(value):
            fail(f"{key}={value!r} is not a number")
    if not isinstance(log, bool):
        fail(f"log={log!r} is not true or false")
    if low > high:
        fail(f"low={low} is greater than high={high}")
    if step is not None and (not _is_number(step) or step <= 0):
        fail(f"step={step!r} is not a positive number")
    if log and low <= 0:
        fail(f"log scale needs low > 0, got low={low}")
    if kind is None:
        kind = _setting_kind(name, fail) or (
            "int" if _is_int(low) and _is_int(high) and (step is None or _is_int(step)) else "float")
    if kind == "int":
        if not (float(low).is_integer() and float(high).is_integer()) or (step is not None and not float(step).is_integer()):
            fail("type int needs integer low, high and step")
        if log and step not in (None, 1):
            fail("log scale and step cannot be combined")
        _check_setting_values(name, [int(low), int(high)], fail)
        return Knob(name, "int", low=int(low), high=int(high), log=log, step=int(step) if step else None)
    if log and step is not None:
        fail("log scale and step cannot be combined")
    _check_setting_values(name, [float(low), float(high)], fail)
    return Knob(name, "float", low=float(low), high=float(high), log=log, step=float(step) if step else None)


def _network_setting(name: str) -> Optional[str]:
    """The ``NetConfig`` field a knob sets (``model.<field>``), or None."""
    from ttfs_lab.netconfig import setting_types

    keys = target_path(name).split(".")
    return keys[1] if len(keys) == 2 and keys[0] == "model" and keys[1] in setting_types() else None


def _setting_kind(name: str, fail) -> Optional[str]:
    """``int`` / ``float`` for a range over a numeric network setting; a range over any other one fails."""
    from ttfs_lab.netconfig import setting_types

    setting = _network_setting(name)
    if setting is None:
        return None
    kind = setting_types()[setting][0]
    if kind not in (int, float):
        fail(f"model.{setting} is a {kind.__name__} setting; give choices, e.g. {{choices: [...]}}")
    return kind.__name__


def _check_setting_values(name: str, values, fail) -> None:
    """Each value of a knob over a network setting passes ``NetConfig``'s checks (one line naming the value)."""
    from ttfs_lab.netconfig import check_setting

    setting = _network_setting(name)
    for value in values if setting else ():
        try:
            check_setting(setting, value)
        except ValueError as err:
            fail(f"value {value!r} is not valid ({_first_line(err)})")


def _component(spec: Any, what: str, names: tuple, fail) -> dict:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        fail(f"{what} must be a name or {{type: <name>, ...}}; names: {', '.join(names)}")
    if spec["type"] not in names:
        fail(f"unknown {what} type {spec['type']!r}; use one of: {', '.join(names)}")
    return dict(spec)


def build_pruner(space: Space):
    import optuna

    spec = dict(space.pruner)
    kind = spec.pop("type")
    classes = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
               "percentile": optuna.pruners.PercentilePruner,
               "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
               "threshold": optuna.pruners.ThresholdPruner, "none": optuna.pruners.NopPruner}
    try:
        return classes[kind](**spec)
    except (TypeError, ValueError) as err:
        raise SpaceError(f"{space.path}: pruner {kind}: {_first_line(err)}") from None


def build_sampler(space: Space, seed_offset: int = 0):
    """The sampler of one worker (None = Optuna's default); a seed is offset per worker so they differ."""
    if space.sampler is None:
        return None
    import optuna

    spec = dict(space.sampler)
    kind = spec.pop("type")
    if spec.get("seed") is not None:
        if not _is_int(spec["seed"]):
            raise SpaceError(f"{space.path}: sampler {kind}: seed={spec['seed']!r} is not an integer")
        spec["seed"] += seed_offset
    classes = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
               "nsga2": optuna.samplers.NSGAIISampler, "qmc": optuna.samplers.QMCSampler}
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings
            return classes[kind](**spec)
    except (TypeError, ValueError) as err:
        raise SpaceError(f"{space.path}: sampler {kind}: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
