"""Checked reading of the camera files users hand over (``cameras.json`` in both layouts, ``transforms.json``,
COLMAP models): every value's type and range is checked before it is used, and the first problem is one
:class:`~mum.errors.UserError` naming the file and the entry.

JSON is parsed with its nesting bounded (:data:`MAX_JSON_DEPTH`; the parser's own recursion limit is caught
too), numbers must be finite (``1e400`` parses to infinity, ``NaN`` and ``Infinity`` are accepted by Python's
parser), whole numbers stay whole, and a matrix is a list of rows of numbers of one of the shapes asked for.
:func:`check_camera` holds one camera (image size, ``K``, camera-from-world) to ranges in which the pipeline's
arithmetic stays finite: a focal length of 1e-300 px or a translation of 1e308 is refused here rather than
turning into an empty point cloud later.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mum.errors import UserError, one_line

MAX_JSON_DEPTH = 32  # levels of nested lists/objects a cameras file may have (they need 4)
MAX_IMAGE_SIDE = 1_000_000  # pixels: width and height of an image a camera describes
FOCAL_RANGE = (1e-2, 1e3)  # focal length in units of the image's longer side (FoV ~ 0.06° to 176°)
PRINCIPAL_RANGE = (-1.0, 2.0)  # principal point in units of the image's width / height
MAX_COORDINATE = 1e9  # |translation| of a camera-from-world: metres of a planet, millimetres of a city
ROTATION_TOLERANCE = 1e-5  # |RᵀR − I| and |det R − 1| allowed in a given rotation
_MISSING = object()


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, as one printable line (a file can hold megabytes there)."""
    text = one_line(repr(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def check_camera(where: str, width: int, height: int, K: np.ndarray, cam_from_world: np.ndarray | None) -> None:
    """Refuse a camera the pipeline cannot use: ``width``/``height`` outside ``1 ..`` :data:`MAX_IMAGE_SIDE`;
    ``K`` not ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with finite values, focal lengths within
    :data:`FOCAL_RANGE` of the longer side and the principal point within :data:`PRINCIPAL_RANGE` of the size;
    a ``cam_from_world`` (4×4) with a non-finite value, a last row other than ``[0, 0, 0, 1]``, a rotation that
    is not orthonormal with determinant 1, or a translation beyond :data:`MAX_COORDINATE`."""
    for key, side in (("width", width), ("height", height)):
        if not 1 <= side <= MAX_IMAGE_SIDE:
            raise UserError(f"{where}: the image {key} {side} is out of range [1, {MAX_IMAGE_SIDE}]")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise UserError(f"{where}: K must be 3x3")
    if not np.isfinite(K).all():
        raise UserError(f"{where}: K has a non-finite value (NaN or infinity)")
    long_side = max(width, height)
    lo, hi = FOCAL_RANGE[0] * long_side, FOCAL_RANGE[1] * long_side
    if not (lo <= K[0, 0] <= hi and lo <= K[1, 1] <= hi):
        raise UserError(f"{where}: K's focal lengths (fx={K[0, 0]:g}, fy={K[1, 1]:g}) must be between {lo:g} and "
                        f"{hi:g} px for a {width}x{height} image")
    if abs(K[0, 1]) > 1e-9 * K[0, 0] or K[1, 0] != 0 or not np.allclose(K[2], [0, 0, 1], rtol=0, atol=1e-9):
        raise UserError(f"{where}: K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew)")
    for axis, side in ((0, width), (1, height)):
        c = K[axis, 2]
        if not PRINCIPAL_RANGE[0] * side <= c <= PRINCIPAL_RANGE[1] * side:
            raise UserError(f"{where}: K's principal point {'cx' if axis == 0 else 'cy'}={c:g} is too far outside "
                            f"the {width}x{height} image")
    if cam_from_world is None:
        return
    pose = np.asarray(cam_from_world, np.float64)
    if pose.shape != (4, 4):
        raise UserError(f"{where}: cam_from_world must be 4x4")
    if not np.isfinite(pose).all():
        raise UserError(f"{where}: cam_from_world has a non-finite value (NaN or infinity)")
    if not np.allclose(pose[3], [0, 0, 0, 1], rtol=0, atol=1e-9):
        raise UserError(f"{where}: cam_from_world's last row must be [0, 0, 0, 1]")
    R = pose[:3, :3]
    error = float(np.abs(R.T @ R - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if not error <= ROTATION_TOLERANCE or not abs(det - 1) <= ROTATION_TOLERANCE:
        raise UserError(f"{where}: the rotation of cam_from_world is not orthonormal with determinant 1 "
                        f"(|RᵀR − I| = {error:.2g}, det = {det:.6g})")
    if np.abs(pose[:3, 3]).max() > MAX_COORDINATE:
        raise UserError(f"{where}: cam_from_world's translation {shown(pose[:3, 3].tolist(), 60)} is beyond "
                        f"±{MAX_COORDINATE:g}")
