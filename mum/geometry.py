"""Camera and scene geometry as plain functions (the project's one geometry module): tensor functions for the
model, the training targets and the pipeline, and at the end the few numpy helpers the synthetic data engine
renders with (look-at cameras, pixel rays, sparse depth from points).

Conventions (see ``docs/architecture.md``):

- Extrinsics are camera-from-world with OpenCV axes (x right, y down, z forward): ``[..., 3, 4] = [R | t]``,
  ``X_cam = R @ X_world + t``.
- Intrinsics are in pixels, ``[..., 3, 3]``; pixel ``(u, v)`` = (column, row) with pixel centres at integers.
- Quaternions are scalar-last ``[qx, qy, qz, qw]`` (XYZW).
- Pose encoding ``absT_quaR_FoV`` (VGGT): ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``, FoV in radians,
  ``fov_h = 2 atan(H / 2 / fy)``, ``fov_w = 2 atan(W / 2 / fx)``.

Every tensor function accepts arbitrary leading batch dimensions ``...`` and computes in the dtype of its inputs.
Evaluation metrics (relative pose errors, pose AUC, Umeyama alignment) are in :mod:`heads.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "POSE_ENCODING_TYPE",
    "camera_centers",
    "camera_points_to_pixels",
    "closed_form_inverse_se3",
    "depth_to_camera_points",
    "depth_to_world_points",
    "extri_intri_to_pose_encoding",
    "centred_intrinsics",
    "intrinsics_from_fov",
    "look_at",
    "extrinsics_intrinsics_to_pose_encoding",
    "mat_to_quat",
    "pixel_grid",
    "pixel_rays",
    "pose_encoding_to_extri_intri",
    "pose_encoding_to_extrinsics_intrinsics",
    "quat_to_mat",
    "ray_basis",
    "rotation_angle_deg",
    "sparse_depth",
    "standardize_quaternion",
    "transform_points",
    "world_points_to_camera_points",
]

POSE_ENCODING_TYPE = "absT_quaR_FoV"


# ----------------------------------------------------------------------------------------------------------------
# Quaternions (scalar last, XYZW) <-> rotation matrices
# ----------------------------------------------------------------------------------------------------------------


def quat_to_mat(quaternions: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from quaternions of any non-zero norm.

    Args:
        quaternions: ``[..., 4]`` as ``(x, y, z, w)``; need not be unit length (the formula divides by ``|q|^2``,
            so ``q`` and ``c·q`` give the same rotation).

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    x, y, z, w = torch.unbind(quaternions, dim=-1)
    two_s = 2.0 / (quaternions * quaternions).sum(dim=-1)
    rows = (
        1 - two_s * (y * y + z * z),
        two_s * (x * y - z * w),
        two_s * (x * z + y * w),
        two_s * (x * y + z * w),
        1 - two_s * (x * x + z * z),
        two_s * (y * z - x * w),
        two_s * (x * z - y * w),
        two_s * (y * z + x * w),
        1 - two_s * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(quaternions.shape[:-1] + (3, 3))


def standardize_quaternion(quaternions: torch.Tensor) -> torch.Tensor:
    """Pick the representative with non-negative real part: ``q`` if ``qw >= 0`` else ``-q``. ``[..., 4]`` XYZW."""
    return torch.where(quaternions[..., 3:4] < 0, -quaternions, quaternions)


def mat_to_quat(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (XYZW, ``qw >= 0``) from rotation matrices.

    Shepperd's method as in PyTorch3D / VGGT: the four quantities ``4 w², 4 x², 4 y², 4 z²`` are read off the
    diagonal; the quaternion is rebuilt from the row whose component is largest (best conditioned), which keeps
    180-degree rotations exact.

    Args:
        matrix: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 4]`` quaternions ``(x, y, z, w)`` with ``w >= 0``.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotation matrices [..., 3, 3], got {tuple(matrix.shape)}")
    batch = matrix.shape[:-2]
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = torch.unbind(matrix.reshape(batch + (9,)), dim=-1)

    # |2w|, |2x|, |2y|, |2z| from the trace identities.
    abs_2q = _sqrt_positive_part(
        torch.stack(
            (
                1.0 + m00 + m11 + m22,
                1.0 + m00 - m11 - m22,
                1.0 - m00 + m11 - m22,
                1.0 - m00 - m11 + m22,
            ),
            dim=-1,
        )
    )
    # Row k holds (w, x, y, z) multiplied by 4·q_k (q_k = w, x, y, z for k = 0..3).
    scaled = torch.stack(
        (
            torch.stack((abs_2q[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, abs_2q[..., 1] ** 2, m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, abs_2q[..., 2] ** 2, m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, abs_2q[..., 3] ** 2), dim=-1),
        ),
        dim=-2,
    )
    # The floor only guards the division; a row with a small denominator is never picked.
    floor = torch.tensor(0.1, dtype=abs_2q.dtype, device=abs_2q.device)
    candidates = scaled / (2.0 * abs_2q[..., None].maximum(floor))
    best = abs_2q.argmax(dim=-1)
    wxyz = torch.gather(candidates, -2, best[..., None, None].expand(batch + (1, 4))).squeeze(-2)
    return standardize_quaternion(wxyz[..., [1, 2, 3, 0]])


def _sqrt_positive_part(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with a zero (not NaN) gradient where ``x <= 0``."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


# ----------------------------------------------------------------------------------------------------------------
# Pose encoding absT_quaR_FoV <-> extrinsics / intrinsics
# ----------------------------------------------------------------------------------------------------------------


def extrinsics_intrinsics_to_pose_encoding(
    extrinsics: torch.Tensor,
    intrinsics: torch.Tensor,
    image_size_hw: Sequence[int] | torch.Tensor,
    pose_encoding_type: str = POSE_ENCODING_TYPE,
) -> torch.Tensor:
    """Encode cameras as VGGT's ``absT_quaR_FoV`` vector.

    Args:
        extrinsics: ``[..., 3, 4]`` camera-from-world ``[R | t]`` (OpenCV).
        intrinsics: ``[..., 3, 3]`` in pixels of an ``H x W`` image.
        image_size_hw: ``(H, W)`` of that image.

    Returns:
        ``[..., 9]`` = ``[t (3), quaternion xyzw with qw >= 0 (4), fov_h, fov_w]``.
    """
    _check_encoding_type(pose_encoding_type)
    height, width = (float(v) for v in image_size_hw)
    rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    fov_h = 2 * torch.atan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsics[..., 0, 0])
    return torch.cat((translation, mat_to_quat(rotation), fov_h[..., None], fov_w[..., None]), dim=-1)


def pose_encoding_to_extrinsics_intrinsics(
    pose_encoding: torch.Tensor,
    image_size_hw: Sequence[int] | torch.Tensor | None = None,
    pose_encoding_type: str = POSE_ENCODING_TYPE,
    build_intrinsics: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode ``absT_quaR_FoV`` vectors into camera matrices.

    The quaternion need not be unit length (:func:`quat_to_mat` normalises). The principal point is put at the
    image centre ``(W / 2, H / 2)``.

    Args:
        pose_encoding: ``[..., 9]``.
        image_size_hw: ``(H, W)``; required when ``build_intrinsics``.

    Returns:
        ``(extrinsics [..., 3, 4], intrinsics [..., 3, 3] or None)``.
    """
    _check_encoding_type(pose_encoding_type)
    translation = pose_encoding[..., :3]
    quaternion = pose_encoding[..., 3:7]
    fov_h, fov_w = pose_encoding[..., 7], pose_encoding[..., 8]
    extrinsics = torch.cat((quat_to_mat(quaternion), translation[..., None]), dim=-1)
    if not build_intrinsics:
        return extrinsics, None
    if image_size_hw is None:
        raise ValueError("image_size_hw is required to build intrinsics")
    height, width = (float(v) for v in image_size_hw)
    fy = (height / 2.0) / torch.tan(fov_h / 2.0)
    fx = (width / 2.0) / torch.tan(fov_w / 2.0)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    intrinsics = torch.stack(
        (
            torch.stack((fx, zero, zero + width / 2), dim=-1),
            torch.stack((zero, fy, zero + height / 2), dim=-1),
            torch.stack((zero, zero, one), dim=-1),
        ),
        dim=-2,
    )
    return extrinsics, intrinsics


# The official VGGT names, for readers porting code.
extri_intri_to_pose_encoding = extrinsics_intrinsics_to_pose_encoding
pose_encoding_to_extri_intri = pose_encoding_to_extrinsics_intrinsics


def _check_encoding_type(pose_encoding_type: str) -> None:
    if pose_encoding_type != POSE_ENCODING_TYPE:
        raise NotImplementedError(f"pose encoding {pose_encoding_type!r}; only {POSE_ENCODING_TYPE!r} is supported")


# ----------------------------------------------------------------------------------------------------------------
# Rigid transforms, unprojection and projection
# ----------------------------------------------------------------------------------------------------------------


def closed_form_inverse_se3(se3: torch.Tensor) -> torch.Tensor:
    """Invert rigid transforms without a general matrix inverse: ``[R | t]⁻¹ = [Rᵀ | -Rᵀ t]``.

    Args:
        se3: ``[..., 3, 4]`` or ``[..., 4, 4]`` (the bottom row, if any, is assumed ``[0, 0, 0, 1]``).

    Returns:
        ``[..., 4, 4]`` inverses (e.g. world-from-camera for camera-from-world input).
    """
    if se3.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"expected [..., 3, 4] or [..., 4, 4] transforms, got {tuple(se3.shape)}")
    rotation_t = se3[..., :3, :3].transpose(-1, -2)
    translation = se3[..., :3, 3:]
    top = torch.cat((rotation_t, -(rotation_t @ translation)), dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat((top, bottom), dim=-2)


def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``[..., 3, 4]`` (or ``[..., 4, 4]``) transforms to points ``[..., *grid, 3]``.

    The transform's batch dims must broadcast against the points' leading dims; ``*grid`` is any number of
    point dimensions (e.g. ``H, W`` or ``N``): ``[B, 3, 4]`` applies to ``[B, H, W, 3]`` or ``[B, N, 3]``.
    """
    grid_dims = points.dim() - 1 - (transform.dim() - 2)
    if grid_dims < 0:
        raise ValueError(f"points {tuple(points.shape)} have fewer dims than transforms {tuple(transform.shape)}")
    rotation = transform[..., :3, :3]
    translation = transform[..., :3, 3]
    for _ in range(grid_dims):
        rotation, translation = rotation[..., None, :, :], translation[..., None, :]
    return (rotation @ points[..., None]).squeeze(-1) + translation


def pixel_grid(
    height: int, width: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Pixel coordinates ``[H, W, 2]`` with ``[..., 0] = u`` (column) and ``[..., 1] = v`` (row), centres at integers
    (float, torch's default dtype unless given)."""
    dtype = dtype or torch.get_default_dtype()
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device), torch.arange(width, dtype=dtype, device=device), indexing="ij"
    )
    return torch.stack((u, v), dim=-1)


def _depth_hw(depth: torch.Tensor, camera_batch: torch.Size) -> torch.Tensor:
    """Accept ``[..., H, W]`` or ``[..., H, W, 1]`` depth for cameras with batch shape ``...``."""
    if depth.dim() == len(camera_batch) + 3 and depth.shape[-1] == 1:
        depth = depth.squeeze(-1)
    try:
        if depth.dim() != len(camera_batch) + 2:
            raise RuntimeError
        # broadcast check by hand: torch.broadcast_shapes imports sympy (~0.3 s) on first use
        if any(a != b and 1 not in (a, b) for a, b in zip(depth.shape[:-2], camera_batch)):
            raise RuntimeError
    except RuntimeError:
        raise ValueError(
            f"depth {tuple(depth.shape)} does not match cameras with batch shape {tuple(camera_batch)}: "
            "expected [..., H, W] or [..., H, W, 1]"
        ) from None
    return depth


def depth_to_camera_points(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Unproject z-depth maps into the camera frame.

    ``X_cam = d · K⁻¹ [u, v, 1]ᵀ``; for zero skew ``X_cam = ((u - cx) d / fx, (v - cy) d / fy, d)``.

    Args:
        depth: ``[..., H, W]`` or ``[..., H, W, 1]`` camera z (e.g. VGGT's ``[B, S, H, W, 1]`` depth).
        intrinsics: ``[..., 3, 3]`` in pixels of the depth map.

    Returns:
        ``[..., H, W, 3]`` camera-frame points.
    """
    depth = _depth_hw(depth, intrinsics.shape[:-2])
    height, width = depth.shape[-2:]
    uv = pixel_grid(height, width, dtype=depth.dtype, device=depth.device)
    k = intrinsics[..., None, None, :, :]  # broadcast over the pixel grid
    fx, fy, skew, cx, cy = k[..., 0, 0], k[..., 1, 1], k[..., 0, 1], k[..., 0, 2], k[..., 1, 2]
    y_norm = (uv[..., 1] - cy) / fy
    x_norm = (uv[..., 0] - cx - skew * y_norm) / fx
    return torch.stack((x_norm * depth, y_norm * depth, depth), dim=-1)


def depth_to_world_points(depth: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Unproject z-depth maps to world points: ``X_world = c + d · M [u, v, 1]ᵀ`` with ``M = Rᵀ K⁻¹`` and the
    camera centre ``c = −Rᵀ t`` (``M`` and ``c`` are computed in float64, then cast to the depth's dtype).

    Args:
        depth: ``[..., H, W]`` or ``[..., H, W, 1]``.
        extrinsics: ``[..., 3, 4]`` camera-from-world.
        intrinsics: ``[..., 3, 3]``.

    Returns:
        ``[..., H, W, 3]`` points in the world frame (for VGGT outputs: the first camera's frame).
    """
    depth = _depth_hw(depth, max(extrinsics.shape[:-2], intrinsics.shape[:-2], key=len))
    height, width = depth.shape[-2:]
    rotation, translation = extrinsics[..., :3, :3].double(), extrinsics[..., :3, 3:].double()
    m = (rotation.mT @ torch.linalg.inv(intrinsics.double())).to(depth.dtype)
    centre = (-rotation.mT @ translation)[..., 0].to(depth.dtype)  # [..., 3]
    u = torch.arange(width, dtype=depth.dtype, device=depth.device)
    v = torch.arange(height, dtype=depth.dtype, device=depth.device)
    along_row = u[:, None] * m[..., None, :, 0]  # u · M[:, 0]   [..., W, 3]
    along_col = v[:, None] * m[..., None, :, 1] + m[..., None, :, 2]  # v · M[:, 1] + M[:, 2]   [..., H, 3]
    directions = along_row[..., None, :, :] + along_col[..., :, None, :]  # [..., H, W, 3]
    return torch.addcmul(centre[..., None, None, :], directions, depth[..., None])


def world_points_to_camera_points(points: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """``X_cam = R X_world + t`` for points ``[..., *grid, 3]`` and extrinsics ``[..., 3, 4]``; the z of the result
    is the depth."""
    return transform_points(extrinsics, points)


def camera_points_to_pixels(points: torch.Tensor, intrinsics: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pinhole projection ``[..., *grid, 3] -> [..., *grid, 2]`` pixel ``(u, v)``; intrinsics ``[..., 3, 3]``."""
    k = intrinsics
    for _ in range(points.dim() - 1 - (intrinsics.dim() - 2)):
        k = k[..., None, :, :]
    z = points[..., 2:3]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    homogeneous = (k @ (points / z)[..., None]).squeeze(-1)
    return homogeneous[..., :2]


# ----------------------------------------------------------------------------------------------------------------
# Rotation angles
# ----------------------------------------------------------------------------------------------------------------


def rotation_angle_deg(rotation_a: torch.Tensor, rotation_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle in degrees between rotations ``[..., 3, 3]``: the angle of ``Aᵀ B``, in ``[0, 180]``.

    Uses ``atan2(sin θ, cos θ)`` with ``sin θ = ‖vee(M - Mᵀ)‖ / 2`` and ``cos θ = (tr M - 1) / 2``, accurate
    at 0 and 180 degrees alike.
    """
    m = rotation_a.transpose(-1, -2) @ rotation_b
    sin_vec = torch.stack((m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]), -1)
    sin_theta = sin_vec.norm(dim=-1) / 2
    cos_theta = (m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1) / 2
    return torch.rad2deg(torch.atan2(sin_theta, cos_theta))


# ----------------------------------------------------------------------------------------------------------------
# Numpy helpers of the synthetic data engine and the exports (float64 unless said otherwise)
# ----------------------------------------------------------------------------------------------------------------


def centred_intrinsics(fx: float, width: int, height: int, fy: float | None = None) -> np.ndarray:
    """``[3, 3]`` pinhole intrinsics with focal lengths ``fx``, ``fy`` (default ``fx``: square pixels) and the
    principal point at the image centre ``((W-1)/2, (H-1)/2)`` (pixel centres at integers)."""
    fy = fx if fy is None else fy
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fy, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def intrinsics_from_fov(fov_x: float, width: int, height: int, aspect: float = 1.0) -> np.ndarray:
    """``[3, 3]`` pinhole intrinsics with horizontal field of view ``fov_x`` (radians), square pixels scaled by
    ``aspect`` (fy = fx · aspect) and the principal point at the image centre ``((W-1)/2, (H-1)/2)``."""
    fx = 0.5 * width / np.tan(0.5 * fov_x)
    return centred_intrinsics(fx, width, height, fx * aspect)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0]), roll: float = 0.0) -> np.ndarray:
    """Camera-from-world ``[3, 4]`` for a camera at ``eye`` looking at ``target`` (OpenCV axes: z forward,
    y down, so the image's up is as close as possible to world ``up``); ``roll`` in radians about z."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:  # looking along up: pick any perpendicular
        x = np.cross(z, np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ R
    return np.concatenate([R, (-R @ eye)[:, None]], axis=1)


def camera_centers(cam_from_world: np.ndarray) -> np.ndarray:
    """Camera-from-world ``[..., 3, 4]`` (or ``[..., 4, 4]``) → camera centres ``−Rᵀ t`` in the world ``[..., 3]``."""
    R, t = cam_from_world[..., :3, :3], cam_from_world[..., :3, 3]
    return -np.einsum("...ji,...j->...i", R, t)


def ray_basis(K: np.ndarray, cam_from_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rays of a pinhole camera in closed form, float64: its centre ``[..., 3]`` (every ray's origin) and
    ``M = Rᵀ K⁻¹`` ``[..., 3, 3]``: the world direction of pixel ``(u, v)`` (centres at integers) scaled so that
    the ray parameter equals the z-depth in the camera is ``M [u, v, 1]``. ``K [..., 3, 3]``,
    ``cam_from_world [..., 3, 4]`` (or ``[..., 4, 4]``)."""
    K, E = np.asarray(K, np.float64), np.asarray(cam_from_world, np.float64)
    return camera_centers(E), np.swapaxes(E[..., :3, :3], -1, -2) @ np.linalg.inv(K)


def pixel_rays(K: np.ndarray, cam_from_world: np.ndarray, width: int, height: int) -> np.ndarray:
    """World rays ``[H, W, 6]`` float32 (origin, direction) through pixel centres, directions scaled so that
    the ray parameter equals the z-depth in the camera (camera-frame direction ``K⁻¹ [u, v, 1]``; closed form:
    :func:`ray_basis`). Batched: ``K [..., 3, 3]`` and ``cam_from_world [..., 3, 4]`` give ``[..., H, W, 6]``."""
    centre, M = ray_basis(K, cam_from_world)
    M = M.astype(np.float32)  # world direction = M [u, v, 1]
    batch = M.shape[:-2]
    pixels = np.ones((height, width, 3), np.float32)
    pixels[..., 0] = np.arange(width, dtype=np.float32)
    pixels[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    rays = np.empty(batch + (height * width, 6), np.float32)
    rays[..., :3] = centre.astype(np.float32)[..., None, :]
    rays[..., 3:] = pixels.reshape(-1, 3) @ np.swapaxes(M, -1, -2)
    return rays.reshape(batch + (height, width, 6))


def sparse_depth(points3d: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Project world points ``[P, 3]`` into each camera (``[S, 3, 4]``, ``[S, 3, 3]``): nearest z per pixel.

    Returns ``depth`` ``[S, H, W]`` float32 (0 = unknown) and ``valid`` ``[S, H, W]`` bool. No visibility test
    beyond keeping the nearest point per pixel (COLMAP tracks would be exact; points are usually few)."""
    S = extrinsics.shape[0]
    depth = np.full((S, height, width), np.inf, dtype=np.float32)
    for i in range(S):
        cam = points3d @ extrinsics[i, :3, :3].T + extrinsics[i, :3, 3]
        z = cam[:, 2]
        ok = z > 1e-6
        uv = cam[ok] @ intrinsics[i].T
        u = np.rint(uv[:, 0] / uv[:, 2]).astype(np.int64)
        v = np.rint(uv[:, 1] / uv[:, 2]).astype(np.int64)
        inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
        np.minimum.at(depth[i], (v[inside], u[inside]), z[ok][inside].astype(np.float32))
    valid = np.isfinite(depth)
    return np.where(valid, depth, 0).astype(np.float32), valid
