"""Check a sweep before any trial starts: every knob is a config path of the base config's schema, and every value
a knob can take (each choice, both ends of a range) parses and builds the model and the DataModule.

The schema is the platform's LightningCLI parser (``ttfs_lab.config.TTFSLabCLI``), built once without
instantiating anything; each probe is one parse (~10 ms) plus, for model and data knobs, building the model and
the DataModule the way the CLI links them (no data is read, no Trainer, no run record, no W&B).
"""

from __future__ import annotations

import copy
import importlib
import logging
import re
import warnings
from typing import Any

from ttfs_lab.errors import ConfigError, TTFSLabError, first_line
from ttfs_lab.overrides import apply
from ttfs_lab.sweep.space import Knob, Space, SpaceError

_UNKNOWN_KEY = re.compile(r"does not accept option|is not accepted|[Uu]nrecognized|[Uu]nexpected", re.I)


def _parser(base: dict, config_name: str):
    from jsonargparse import ArgumentError

    from ttfs_lab.config import TTFSLabCLI
    from ttfs_lab.train import config_error_line

    class ParseOnly(TTFSLabCLI):
        def instantiate_classes(self) -> None:  # the schema and one parse, nothing built
            pass

    seed_log = logging.getLogger("lightning.fabric.utilities.seed")  # "Seed set to 0": nothing trains here
    level = seed_log.level
    seed_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ParseOnly(args=copy.deepcopy(base)).parser  # jsonargparse edits what it parses
    except ArgumentError as err:
        raise ConfigError(f"{config_name}: {config_error_line(err)}") from None
    finally:
        seed_log.setLevel(level)


def _reason(err: Exception) -> str:
    from ttfs_lab.train import config_error_line

    return config_error_line(err).removeprefix("invalid configuration: ")


def build_components(parser, config: dict) -> None:
    """Parse ``config`` and build its DataModule and model as the CLI would (links included)."""
    from ttfs_lab.config import LINKS
    from ttfs_lab.module import TTFSClassifier

    ns = parser.parse_object(copy.deepcopy(config))
    resolved = ns.clone().as_dict()
    data = resolved["data"]
    module, _, name = str(data["class_path"]).rpartition(".")
    data_cls = getattr(importlib.import_module(module), name)
    dm = data_cls(**(data.get("init_args") or {}))
    model_kwargs = dict(resolved.get("model") or {})
    for source, target in LINKS:
        model_kwargs[target] = getattr(dm, source)
    TTFSClassifier(**model_kwargs)


def check_config(base: dict, space: Space, config_name: str) -> None:
    """Raise a one-line ``ConfigError`` for a bad base config, or a ``SpaceError`` naming the knob at fault."""
    from jsonargparse import ArgumentError

    parser = _parser(base, config_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_components(parser, base)
    except ArgumentError as err:
        raise ConfigError(f"{config_name}: invalid configuration: {_reason(err)}") from None
    except (TTFSLabError, ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{config_name}: {first_line(err)}") from None
    for knob in space.knobs:
        for value in knob.probe_values():
            check_knob_value(parser, base, space, knob, value)
    _warn_ignored(base, space)


def check_knob_value(parser, base: dict, space: Space, knob: Knob, value: Any) -> None:
    from jsonargparse import ArgumentError

    where = f"{space.path}: knob {knob.name}"
    try:
        config = apply(base, {knob.target: value})
    except ConfigError as err:
        raise SpaceError(f"{where}: {err}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if knob.target.split(".")[0] in ("model", "data"):
                build_components(parser, config)
            else:
                parser.parse_object(copy.deepcopy(config))
    except ArgumentError as err:
        reason = _reason(err)
        if _UNKNOWN_KEY.search(reason):
            raise SpaceError(f"{where}: {knob.target} is not a config path ({reason})") from None
        raise SpaceError(f"{where}: value {value!r} is not valid ({reason})") from None
    except (TTFSLabError, ValueError, TypeError, KeyError) as err:
        raise SpaceError(f"{where}: value {value!r} is not valid ({first_line(err)})") from None


def _warn_ignored(base: dict, space: Space) -> None:
    """model.T does nothing for event data (T is data.init_args.frames there): say so once."""
    from ttfs_lab.data import DATAMODULES, EventDataModule

    args = (base.get("data") or {}).get("init_args") or {}
    events = {c.__name__ for c in DATAMODULES.values() if issubclass(c, EventDataModule)}
    frames = "frames" in args or str((base.get("data") or {}).get("class_path", "")).rpartition(".")[2] in events
    if frames and any(k.target == "model.T" for k in space.knobs):
        print(f"note: {space.path}: knob model.T has no effect on event data, whose T is data.init_args.frames; "
              "sweep data.init_args.frames instead (see sweeps/dvsgesture.yaml)")
