"""Checked reading of what users hand over as JSON (camera files, model configs): every value's type and range
is checked before it is used, and the first problem is one :class:`~mum.errors.UserError` line naming where it
is (the file and the entry, or the config key).

JSON is parsed with its nesting bounded (:data:`MAX_JSON_DEPTH`; the parser's own recursion limit is caught
too), numbers must be finite (``1e400`` parses to infinity, ``NaN`` and ``Infinity`` are accepted by Python's
parser), whole numbers stay whole, and a matrix is a list of rows of numbers of one of the shapes asked for.
:func:`dataclass_from_dict` builds a config dataclass from such a document, field by field, each held to a range.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mum.errors import UserError, one_line

MAX_JSON_DEPTH = 32  # levels of nested lists/objects a cameras file or config may have (they need 4)
MAX_IMAGE_SIDE = 1_000_000  # pixels: width and height of an image a camera describes
_MISSING = object()


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, as one printable line (a file can hold megabytes there)."""
    text = one_line(repr(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def strict_json(document: Any, indent: int | None = 1) -> str:
    """``document`` as strict JSON text: NaN and ±infinity (unknown values) become ``null``, NumPy scalars and
    arrays plain numbers and lists, tuples lists; ``json.dumps(allow_nan=False)`` proves nothing else is left
    (Python writes a bare ``NaN`` by default, which strict parsers reject)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return plain(value.tolist())
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(plain(document), indent=indent, allow_nan=False)


def loads_json(text: str | bytes, where: str) -> Any:
    """:func:`read_json` for JSON already in memory (a safetensors file's ``mum.config`` metadata)."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise UserError(f"{where}: nested too deeply (at most {MAX_JSON_DEPTH} levels of lists and objects)") from None
    except ValueError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise UserError(f"{where}: not readable JSON ({first})") from None
    check_depth(document, where)
    return document


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document in ``path``: a :class:`UserError` naming the file when it cannot be read, is not JSON
    (or not UTF-8), or nests deeper than :data:`MAX_JSON_DEPTH` (checked after parsing, and a document deep
    enough to exhaust the parser's recursion is caught as such)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        document = json.loads(data)
    except RecursionError:
        raise UserError(f"{path}: nested too deeply (at most {MAX_JSON_DEPTH} levels of lists and objects)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise UserError(f"{path}: not a readable JSON file ({first})") from None
    check_depth(document, str(path))
    return document


def check_depth(document: Any, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a parsed JSON ``document`` with more than ``limit`` levels of nested lists/objects (iterative)."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise UserError(f"{where}: nested too deeply (at most {limit} levels of lists and objects)")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def as_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where}: is not an object ({shown(value)})")
    return value


def as_list(value: Any, where: str, key: str, nonempty: bool = False) -> list:
    if not isinstance(value, list):
        raise UserError(f"{where}: '{key}' is not a list ({shown(value)})")
    if nonempty and not value:
        raise UserError(f"{where}: '{key}' is empty")
    return value


def get(obj: dict, key: str, where: str, default: Any = _MISSING) -> Any:
    """``obj[key]``; a missing key is a :class:`UserError` unless a ``default`` is given."""
    if key in obj:
        return obj[key]
    if default is _MISSING:
        raise UserError(f"{where}: lacks '{key}'")
    return default


def as_text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: '{key}' is not a non-empty string ({shown(value)})")
    return value


def as_number(value: Any, where: str, key: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite number in ``[lo, hi]`` (an int, or a float; not a bool, a string or ``null``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: '{key}' is not a number ({shown(value)})")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond a float's range
        x = math.inf
    if not math.isfinite(x):
        raise UserError(f"{where}: '{key}' is not a finite number ({shown(value)})")
    if not lo <= x <= hi:
        raise UserError(f"{where}: '{key}' = {x:g} is out of range [{lo:g}, {hi:g}]")
    return x


def as_whole(value: Any, where: str, key: str, lo: int = 1, hi: int = MAX_IMAGE_SIDE) -> int:
    """A whole number in ``[lo, hi]`` (``640`` or ``640.0``)."""
    x = as_number(value, where, key, lo, hi)
    if x != int(x):
        raise UserError(f"{where}: '{key}' is not a whole number ({shown(value)})")
    return int(x)


def as_matrix(value: Any, where: str, key: str, shapes: Sequence[tuple[int, int]]) -> np.ndarray:
    """A matrix given as a list of rows of finite numbers, of one of ``shapes``."""
    wanted = " or ".join(f"{r}x{c}" for r, c in shapes)
    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        raise UserError(f"{where}: '{key}' is not a {wanted} matrix (a list of rows; got {shown(value)})")
    shape = (len(value), len(value[0]))
    if shape not in shapes or any(len(row) != shape[1] for row in value):
        got = "x".join(map(str, shape)) if all(len(row) == shape[1] for row in value) else "ragged rows"
        raise UserError(f"{where}: '{key}' is not a {wanted} matrix ({got})")
    return np.array([[as_number(x, where, f"{key}[{i}][{j}]") for j, x in enumerate(row)]
                     for i, row in enumerate(value)], np.float64)




Range = tuple[float, float]


def dataclass_from_dict(cls: type, data: Any, where: str, ranges: Mapping[str, Range],
                        choices: Mapping[str, Sequence[str]] = {}, strict: bool = True) -> Any:
    """An instance of the (frozen) dataclass ``cls`` from the JSON object ``data``, every field checked against
    its annotation before the constructor sees it: ``int`` a whole number and ``float`` a finite number within
    ``ranges[name]`` (a field without a range is refused: add one), ``bool`` a boolean, ``str`` a string (one of
    ``choices[name]`` when given), ``Optional[X]`` also ``null``, ``tuple[int, ...]`` a list of such, a nested
    dataclass an object checked the same way (the same ``ranges``), ``dict`` an object (the caller checks its
    contents). A missing field takes its default (none: an error); an unknown one is an error when ``strict``,
    else ignored. Problems are one :class:`UserError` line naming ``where`` and the field. The constructor's
    own cross-field checks (``ValueError``) become such a line too."""
    obj = as_object(data, where)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - names)
    if strict and unknown:
        raise UserError(f"{where}: unknown field {shown(unknown[0])}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{where}: lacks '{f.name}'")
            continue
        kwargs[f.name] = check_field(hints[f.name], obj[f.name], where, f.name, ranges, choices, strict)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: {one_line(str(exc))[:200]}") from None


def check_field(hint: Any, value: Any, where: str, key: str, ranges: Mapping[str, Range],
                choices: Mapping[str, Sequence[str]], strict: bool = True) -> Any:
    """``value`` checked against the annotation ``hint`` as :func:`dataclass_from_dict` checks a field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return check_field(inner, value, where, key, ranges, choices, strict)
    if dataclasses.is_dataclass(hint):
        return dataclass_from_dict(hint, value, f"{where}.{key}", ranges, choices, strict)
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: '{key}' is not true or false ({shown(value)})")
        return value
    if hint is str:
        text = as_text(value, where, key)
        if key in choices and text not in choices[key]:
            raise UserError(f"{where}: '{key}' = {shown(text)} is not one of {', '.join(choices[key])}")
        return text
    if hint in (int, float):
        if key not in ranges:
            raise UserError(f"{where}: '{key}' has no allowed range")  # a new field: give it one
        lo, hi = ranges[key]
        return as_whole(value, where, key, int(lo), int(hi)) if hint is int else as_number(value, where, key, lo, hi)
    if origin is tuple:
        items = list(value) if isinstance(value, tuple) else as_list(value, where, key)  # JSON: a list
        inner = args[0]
        if args[-1] is not Ellipsis and len(items) != len(args):
            raise UserError(f"{where}: '{key}' must have {len(args)} entries, not {len(items)}")
        return tuple(check_field(inner, item, where, key, ranges, choices, strict) for item in items)
    if origin is dict or hint is dict:
        return dict(as_object(value, f"{where}.{key}"))
    raise UserError(f"{where}: '{key}' has a type this reader cannot check ({hint})")
