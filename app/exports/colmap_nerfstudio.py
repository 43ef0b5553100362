"""Exports for other reconstruction ecosystems: a COLMAP sparse model (pycolmap) and nerfstudio
``transforms.json``.

Both ecosystems put pixel centres at half-integers (image corner = (0, 0)); the project puts them at integers,
so principal points and 2D observations are shifted by +0.5 on the way out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.engine.reconstruction import PointCloud, Reconstruction
from mum.pycolmap_import import import_pycolmap
from mum.schema import strict_json

COLMAP_MAX_POINTS = 200_000
OPENCV_TO_OPENGL_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


def _pinhole_params(K: np.ndarray) -> list[float]:
    return [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5]


def build_colmap(recon: Reconstruction, cloud: PointCloud, max_points: int = COLMAP_MAX_POINTS):
    """A ``pycolmap.Reconstruction``: one PINHOLE camera per image, the predicted poses, and the cloud's points
    (at most ``max_points``), each observed once, in its source view at its source pixel."""
    pycolmap = import_pycolmap()

    if len(cloud) > max_points:
        idx = np.sort(np.random.default_rng(0).choice(len(cloud), max_points, replace=False))
        cloud = PointCloud(cloud.xyz[idx], cloud.rgb[idx], cloud.conf[idx], cloud.view[idx], cloud.pixel[idx])
    rec = pycolmap.Reconstruction()
    order = np.argsort(cloud.view, kind="stable")
    per_view = np.split(order, np.searchsorted(cloud.view[order], np.arange(1, recon.num_views)))
    for i, (name, (w, h)) in enumerate(zip(recon.names, recon.image_sizes)):
        camera = pycolmap.Camera(
            model="PINHOLE", width=int(w), height=int(h), params=_pinhole_params(recon.intrinsics[i]), camera_id=i + 1
        )
        rec.add_camera_with_trivial_rig(camera)
        points2d = [pycolmap.Point2D(cloud.pixel[j] + 0.5) for j in per_view[i]]
        image = pycolmap.Image(name=name, camera_id=i + 1, image_id=i + 1, points2D=points2d)
        T = recon.cam_from_world[i]
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3])
        rec.add_image_with_trivial_frame(image, pose)
    for i, members in enumerate(per_view):
        for k, j in enumerate(members):
            track = pycolmap.Track()
            track.add_element(i + 1, k)
            rec.add_point3D(cloud.xyz[j].astype(np.float64), track, cloud.rgb[j])
    return rec


def write_colmap(folder: Path, recon: Reconstruction, cloud: PointCloud) -> Path:
    """COLMAP sparse model under ``folder/sparse/0``, binary and text (``cameras``, ``images``, ``points3D``)."""
    out = Path(folder) / "sparse" / "0"
    out.mkdir(parents=True, exist_ok=True)
    rec = build_colmap(recon, cloud)
    rec.write_binary(str(out))
    rec.write_text(str(out))
    return out


def transforms_dict(recon: Reconstruction, image_dir: str = "images") -> dict:
    """nerfstudio / instant-ngp ``transforms.json``: per frame an OpenGL camera-to-world ``transform_matrix``
    and OpenCV pinhole intrinsics in pixels (corner convention)."""
    frames = []
    for i, (name, (w, h)) in enumerate(zip(recon.names, recon.image_sizes)):
        world_from_cam = np.linalg.inv(recon.cam_from_world[i]) @ OPENCV_TO_OPENGL_CAMERA
        fx, fy, cx, cy = _pinhole_params(recon.intrinsics[i])
        frames.append(
            {
                "file_path": f"{image_dir}/{name}",
                "transform_matrix": world_from_cam.tolist(),
                "fl_x": fx,
                "fl_y": fy,
                "cx": cx,
                "cy": cy,
                "w": int(w),
                "h": int(h),
            }
        )
    return {"camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames}


def write_transforms_json(folder: Path, recon: Reconstruction, cloud: PointCloud | None = None) -> Path:
    path = Path(folder) / "transforms.json"
    path.write_text(strict_json(transforms_dict(recon)))
    return path
