"""Strict dataclass configuration: JSON round-trip and dotted `--set key.path=value` overrides.

Every setting lives in a dataclass field. Unknown keys are errors that name the closest valid
keys; values are parsed and checked against the field's declared type.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from genlab.errors import UsageError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-ready data (nested dicts, lists, numbers, strings)."""
    return dataclasses.asdict(cfg)


def all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key a config class accepts, leaves only."""
    keys: list[str] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _aliases(cls: type, prefix: str = "") -> dict[str, str]:
    """Every alias a config class accepts (dotted old key -> dotted new key), nested ones too."""
    out = {prefix + old: prefix + new for old, new in getattr(cls, "ALIASES", {}).items()}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out |= _aliases(hints[f.name], f"{prefix}{f.name}.")
    return out


def _unknown_key(key: str, cls: type, root: type, prefix: str) -> UsageError:
    valid = all_keys(root)
    aliases = _aliases(root)
    names = difflib.get_close_matches(prefix + key, [*valid, *aliases], n=3, cutoff=0.5)
    close = list(dict.fromkeys(aliases.get(name, name) for name in names))
    if not close:
        close = difflib.get_close_matches(key, [k.rsplit(".", 1)[-1] for k in valid], n=3)
        close = [k for k in valid if k.rsplit(".", 1)[-1] in close]
    hint = f"did you mean {', '.join(close)}?" if close else f"valid keys: {', '.join(valid)}"
    return UsageError(f"unknown setting '{prefix}{key}'; {hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (from JSON or a command-line string) to type `tp`, or raise UsageError."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in get_args(tp):
            if arm is type(None):
                if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
                    return None
                continue
            try:
                return _coerce(value, arm, key)
            except UsageError as e:
                errors.append(str(e))
        raise UsageError(errors[0] if errors else f"bad value {value!r} for {key}")
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        raise UsageError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
    if origin in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as e:
                    raise UsageError(f"{key} expects a list like [64,32]; got {value!r}") from e
            else:
                value = [v for v in text.split(",") if v.strip()] if text else []
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{key} expects a list; got {value!r}")
        return [_coerce(v, item_tp, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise UsageError(f"{key} expects true or false; got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UsageError(f"{key} expects an integer; got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise UsageError(f"{key} expects an integer; got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise UsageError(f"{key} expects a number; got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{key} expects a number; got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)):
            raise UsageError(f"{key} expects text; got {value!r}")
        return str(value)
    return value


def _resolve_aliases(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`data` with the keys of `cls.ALIASES` (old flat names) moved to their dotted places."""
    aliases: dict[str, str] = getattr(cls, "ALIASES", {})
    if not any(key in aliases for key in data):
        return data
    data = dict(data)
    for old, new in aliases.items():
        if old not in data:
            continue
        value = data.pop(old)
        *groups, leaf = new.split(".")
        node = data
        for group in groups:
            node[group] = node = dict(node.get(group) or {})
        if leaf in node and node[leaf] != value:
            raise UsageError(
                f"'{prefix}{old}' and '{prefix}{new}' are the same setting; give only one"
            )
        node[leaf] = value
    return data


def _canonical_key(cls: type, parts: list[str]) -> list[str]:
    """A dotted key's parts with an alias (an old flat name) replaced by its dotted place."""
    for depth, part in enumerate(parts):
        aliases: dict[str, str] = getattr(cls, "ALIASES", {})
        rest = ".".join(parts[depth:])
        if rest in aliases:
            return parts[:depth] + aliases[rest].split(".")
        names = {f.name for f in dataclasses.fields(cls)}
        tp = get_type_hints(cls).get(part) if part in names else None
        if not dataclasses.is_dataclass(tp):
            break
        cls = tp
    return parts


def from_dict(
    cls: type[T],
    data: dict[str, Any],
    *,
    root: type | None = None,
    prefix: str = "",
    spelling: dict[str, str] | None = None,
) -> T:
    """Build `cls` from nested plain data; unknown keys and wrong types are UsageErrors.

    A class may declare `ALIASES = {"old": "group.new"}`: old keys are read as the new ones.
    `spelling`: how top-level keys are spelled in those errors (e.g. command-line flags)."""
    root = root or cls
    if not isinstance(data, dict):
        raise UsageError(f"setting '{prefix.rstrip('.')}' expects a group of settings")
    data = _resolve_aliases(cls, data, prefix)
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(key, cls, root, prefix)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, root=root, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, (spelling or {}).get(key, prefix + key))
    cfg = cls(**kwargs)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Return a copy of `cfg` with `key.path=value` strings applied (strict, type-checked)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set expects key.path=value; got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        node: Any = data
        cls: Any = type(cfg)
        parts = _canonical_key(cls, key.split("."))
        key = ".".join(parts)
        for depth, part in enumerate(parts):
            names = {f.name: f for f in dataclasses.fields(cls)}
            prefix = ".".join(parts[:depth])
            prefix = prefix + "." if prefix else ""
            if part not in names:  # match the whole rest: 'trian.steps' -> train.steps
                raise _unknown_key(".".join(parts[depth:]), cls, type(cfg), prefix)
            tp = get_type_hints(cls)[part]
            if depth == len(parts) - 1:
                if dataclasses.is_dataclass(tp):
                    raise UsageError(f"'{key}' is a group of settings; set one of its keys")
                node[part] = _coerce(value, tp, key)
            else:
                if not dataclasses.is_dataclass(tp):
                    raise UsageError(f"'{prefix}{part}' is a single setting, not a group")
                node, cls = node[part], tp
    return from_dict(type(cfg), data)


def dumps(cfg: Any) -> str:
    """The config as indented JSON."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=False)
