"""Typed configuration: YAML is parsed once, at the boundary, into frozen dataclasses.

YAML is read strictly (`parse_yaml`): a key given twice in one mapping is refused (the later
one would silently win) and so is an alias (`*name`: no file ednas reads needs one, and a few
nested aliases expand to gigabytes); both name the line.

`from_dict` builds a dataclass (recursively) from plain data and rejects unknown keys with a
message that lists the valid ones; `to_dict` is its inverse, so every config round-trips.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from ednas.errors import ConfigError, InputError, shorten

T = TypeVar("T")


class StrictYamlError(yaml.YAMLError):
    """YAML that parses but that ednas refuses: a duplicate key or an alias."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (before anything is expanded) and keys given
    twice in one mapping."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            alias = shorten(event.anchor, 40, quote=False)
            raise StrictYamlError(event.start_mark.line + 1, f"alias *{alias} is not supported (ednas reads no "
                                  "anchors or aliases); write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the constructor says so
                if first is not None:
                    raise StrictYamlError(line, f"key {shorten(key)} is given twice in one mapping (first at "
                                          f"line {first}); keep one")
                seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """YAML text -> plain data, strictly (see the module docstring); raises yaml.YAMLError
    (StrictYamlError for what parses but is refused) or RecursionError."""
    loader = _StrictLoader(text)  # a SafeLoader subclass: no tags that build objects
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning every I/O or syntax problem into a one-line error."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise InputError(f"{path}: {what} (give the path of a YAML file)")
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (binary or wrong encoding); give a UTF-8 YAML file") from None
    except StrictYamlError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration file") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ConfigError(f"{path}: not a usable YAML value ({shorten(str(exc), quote=False)})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def dump_yaml(data: Any, path: str | Path) -> None:
    """Write plain data (dicts, lists, scalars) as block-style YAML, keeping key order."""
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise ConfigError naming `where`."""
    return _convert(cls, data, where)


def to_dict(obj: Any) -> Any:
    """Plain-data form of a (nested) dataclass: tuples become lists, ready for YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into `base` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tagged = _tagged_union(args)
        if tagged and isinstance(value, Mapping):
            tag = value.get("type")
            if tag not in tagged:
                raise ConfigError(
                    f"{where}.type: {shorten(tag)} is not one of {', '.join(map(repr, tagged))}"
                )
            return _convert_dataclass(tagged[tag], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {shorten(value)}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {shorten(value)} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {shorten(value)}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {shorten(value)}")
        _, val_tp = typing.get_args(tp) or (Any, Any)
        return {k: _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {shorten(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {shorten(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {shorten(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {shorten(value)}")
        return value
    return value


def _tagged_union(args: tuple[Any, ...]) -> dict[str, Any]:
    """{type tag: class} when every member of a union is a dataclass with a `type` default."""
    tags = {}
    for arg in args:
        if arg is type(None):
            continue
        if not dataclasses.is_dataclass(arg):
            return {}
        field = next((f for f in dataclasses.fields(arg) if f.name == "type"), None)
        if field is None or not isinstance(field.default, str):
            return {}
        tags[field.default] = arg
    return tags


def _convert_dataclass(cls: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value):
        return value
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {shorten(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {shorten(unknown[0])}; valid keys are: {', '.join(fields)}"
        )
    kwargs = {}
    for name, val in value.items():
        kwargs[name] = _convert(hints[name], val, f"{where}.{name}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
