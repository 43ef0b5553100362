"""The checks every camera file reader applies (``cameras.json`` in both layouts, ``transforms.json``, COLMAP
models): the generic JSON and field checks of :mod:`mum.schema`, and :func:`check_camera`, which holds one camera
(image size, ``K``, camera-from-world) to ranges in which the pipeline's arithmetic stays finite: a focal length
of 1e-300 px or a translation of 1e308 is refused here rather than turning into an empty point cloud later.
"""

from __future__ import annotations

import numpy as np

from mum.errors import UserError
from mum.schema import MAX_IMAGE_SIDE, shown

FOCAL_RANGE = (1e-2, 1e3)  # focal length in units of the image's longer side (FoV ~ 0.06° to 176°)
PRINCIPAL_RANGE = (-1.0, 2.0)  # principal point in units of the image's width / height
MAX_COORDINATE = 1e9  # |translation| of a camera-from-world: metres of a planet, millimetres of a city
ROTATION_TOLERANCE = 1e-5  # |RᵀR − I| and |det R − 1| allowed in a given rotation


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
