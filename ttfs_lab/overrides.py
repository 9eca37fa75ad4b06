"""Dotted config paths: ``set_path(config, "data.init_args.frames", 8)`` and ``--set key=value`` parsing.

Sweeps, ablations and the CLI all change a config dict the same way, through these two functions.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import yaml

from ttfs_lab.errors import ConfigError


def set_path(config: dict, path: str, value: Any) -> dict:
    """Set ``value`` at a dotted ``path`` inside ``config`` (creating dicts on the way); returns ``config``."""
    keys = path.split(".")
    if not all(keys):
        raise ConfigError(f"config path {path!r} is not valid; use dotted keys such as model.lr")
    node = config
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"config path {path!r}: {key!r} holds a value, not a section")
        node = child
    node[keys[-1]] = value
    return config


def apply(config: dict, assignments: dict[str, Any]) -> dict:
    """A deep copy of ``config`` with every ``path: value`` of ``assignments`` set."""
    result = copy.deepcopy(config)
    for path, value in assignments.items():
        set_path(result, path, value)
    return result


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["model.lr=0.01", "run.tags=[a, b]"]`` -> ``{"model.lr": 0.01, "run.tags": ["a", "b"]}`` (YAML values)."""
    result = {}
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--set {item!r} is not valid; write --set path.to.key=value, e.g. --set model.lr=0.01")
        try:
            result[path.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return result


def load_yaml(path) -> dict:
    """A YAML mapping from ``path``; a missing or malformed file is a one-line ``ConfigError`` naming it."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data
