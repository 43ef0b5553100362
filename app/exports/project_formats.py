"""Exports of a :class:`~app.engine.reconstruction.Reconstruction`, each in the format its ecosystem expects.

All camera data are in pixels of the original images. Every file is written to a temporary name in the
destination folder and renamed into place, so a failure never leaves half a file or clobbers a user's file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from app.engine.frame_store import release_pages
from app.engine.reconstruction import PointCloud, Reconstruction
from app.engine.runtime import signals_deferred
from mum.files import atomic_path
from mum.schema import strict_json

# OpenCV (x right, y down, z forward) → glTF (x right, y up, z backward)
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0, 1.0])


# ---------------------------------------------------------------------------------------------- PLY
PLY_VERTEX = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
              ("confidence", "<f4")]
PLY_BLOCK = 1 << 20  # points per block of a streamed PLY write


def write_ply(path: str | os.PathLike, cloud: PointCloud, overwrite: bool = True) -> Path:
    """Binary little-endian PLY: float ``x y z``, uchar ``red green blue``, float ``confidence``. Without
    ``overwrite`` a file that appeared at ``path`` meanwhile is kept and a ``UserError`` raised. Streamed: the
    rows are packed and written :data:`PLY_BLOCK` points at a time (a cloud of millions of points never has a
    second copy in memory), into a temporary file renamed into place at the end (an interrupted write leaves
    nothing)."""
    header = ("ply\nformat binary_little_endian 1.0\n" f"element vertex {len(cloud)}\n"
              + "".join(f"property {'float' if t == '<f4' else 'uchar'} {name}\n" for name, t in PLY_VERTEX)
              + "end_header\n")
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            for start in range(0, len(cloud), PLY_BLOCK):
                stop = min(len(cloud), start + PLY_BLOCK)
                vertex = np.empty(stop - start, dtype=PLY_VERTEX)
                for i, axis in enumerate("xyz"):
                    vertex[axis] = cloud.xyz[start:stop, i]
                for i, channel in enumerate(("red", "green", "blue")):
                    vertex[channel] = cloud.rgb[start:stop, i]
                vertex["confidence"] = cloud.conf[start:stop]
                f.write(vertex.tobytes())
    return Path(path)


# ---------------------------------------------------------------------------------------------- GLB
def camera_colors(n: int) -> np.ndarray:
    """``[n, 4]`` uint8 RGBA colours along a perceptual colour ramp, one per camera."""
    with signals_deferred():  # matplotlib and trimesh swallow an interrupt while importing
        import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return (np.array([cmap(i / max(n - 1, 1)) for i in range(n)]) * 255).astype(np.uint8)


def frustum_mesh(cam_from_world: np.ndarray, K: np.ndarray, size: tuple[int, int], scale: float):
    """A thin pyramid (apex at the camera centre, base at depth ``scale``) as a ``trimesh.Trimesh``."""
    with signals_deferred():  # matplotlib and trimesh swallow an interrupt while importing
        import trimesh

    w, h = size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64) - 0.5
    rays = np.linalg.solve(K, np.concatenate([corners, np.ones((4, 1))], 1).T).T
    base = rays / rays[:, 2:3] * scale
    verts_cam = np.concatenate([np.zeros((1, 3)), base], 0)
    world_from_cam = np.linalg.inv(cam_from_world)
    verts = verts_cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    faces = np.concatenate([faces, faces[:, ::-1]])  # both sides visible
    return trimesh.Trimesh(verts, faces, process=False)


def build_glb_scene(recon: Reconstruction, cloud: PointCloud, show_cameras: bool = True):
    """A ``trimesh.Scene``: the coloured point cloud plus one frustum per camera, in glTF axes."""
    with signals_deferred():  # matplotlib and trimesh swallow an interrupt while importing
        import trimesh

    scene = trimesh.Scene()
    if len(cloud):
        colors = np.concatenate([cloud.rgb, np.full((len(cloud), 1), 255, np.uint8)], 1)
        scene.add_geometry(trimesh.PointCloud(cloud.xyz, colors=colors), geom_name="points")
    if show_cameras:
        centers = recon.camera_centers()
        # robust extent: a few stray points must not blow the frustums up
        extent = (np.percentile(cloud.xyz, 95, 0) - np.percentile(cloud.xyz, 5, 0)).max() if len(cloud) \
            else np.ptp(centers, axis=0).max()
        scale = 0.05 * float(extent) if np.isfinite(extent) and extent > 0 else 0.1
        for i, color in enumerate(camera_colors(recon.num_views)):
            if not (np.isfinite(recon.cam_from_world[i]).all() and np.isfinite(recon.intrinsics[i]).all()):
                continue  # a degenerate camera (e.g. infinite focal length) has no drawable frustum
            mesh = frustum_mesh(recon.cam_from_world[i], recon.intrinsics[i], recon.image_sizes[i], scale)
            mesh.visual.face_colors = color
            scene.add_geometry(mesh, geom_name=f"camera_{i:04d}")
    scene.apply_transform(OPENCV_TO_GLTF)
    return scene


def write_glb(path: str | os.PathLike, recon: Reconstruction, cloud: PointCloud, show_cameras: bool = True,
              overwrite: bool = True) -> Path:
    """GLB with the coloured point cloud and one camera frustum per view (glTF axes: y up)."""
    scene = build_glb_scene(recon, cloud, show_cameras)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(scene.export(file_type="glb"))
    return Path(path)


# -------------------------------------------------------------------------------------- cameras.json
def cameras_dict(recon: Reconstruction) -> dict:
    """``{"images": [{"name", "width", "height", "K" 3×3, "cam_from_world" 4×4, "source", "pose_source",
    "intrinsics_source"}, ...]}``, OpenCV axes, original-image pixels (pixel centres at integer coordinates).
    ``pose_source`` (also ``source``, its older name) says where the pose came from: ``"given"`` (a cameras file,
    kept with --fix-poses), ``"sfm"`` (structure-from-motion) or ``"network"`` (the network's, placed in the
    frame of the others); ``intrinsics_source``: ``"given"``, ``"exif"``, ``"sfm"`` or ``"network"``."""
    world = ("world frame and scale = the given cameras'" if recon.meta.get("world") == "given"
             else "world frame = first camera, scale arbitrary")
    return {
        "convention": "cam_from_world maps world to camera, OpenCV axes (x right, y down, z forward); K in pixels "
        f"of the original image with pixel centres at integer coordinates; {world}",
        "images": [
            {
                "name": name,
                "width": int(size[0]),
                "height": int(size[1]),
                "K": recon.intrinsics[i].tolist(),
                "cam_from_world": recon.cam_from_world[i].tolist(),
                "source": source,
                "pose_source": source,
                "intrinsics_source": intrinsics,
            }
            for i, (name, size, source, intrinsics) in enumerate(
                zip(recon.names, recon.image_sizes, recon.pose_origins(), recon.intrinsics_origins()))
        ],
    }


def write_cameras_json(path: str | os.PathLike, recon: Reconstruction, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(strict_json(cameras_dict(recon)))
    return Path(path)


# ------------------------------------------------------------------------------------------- depth
def depth_to_original(recon: Reconstruction, i: int, dense: np.ndarray, interpolation: int) -> np.ndarray:
    """Resample a network-resolution map of view ``i`` to the original image's pixel grid (NaN outside the
    region the network saw)."""
    import cv2

    W, H = recon.image_sizes[i]
    tf = recon.transforms[i]  # separable: the column of a pixel maps to a column of the grid, its row to a row
    columns = tf.points_to_network(np.stack([np.arange(W), np.zeros(W)], -1))[:, 0].astype(np.float32)
    rows = tf.points_to_network(np.stack([np.zeros(H), np.arange(H)], -1))[:, 1].astype(np.float32)
    map_x = np.ascontiguousarray(np.broadcast_to(columns, (H, W)))
    map_y = np.ascontiguousarray(np.broadcast_to(rows[:, None], (H, W)))
    return cv2.remap(dense.astype(np.float32), map_x, map_y, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)


def write_depth_maps(folder: str | os.PathLike, recon: Reconstruction) -> Path:
    """Per view, at original resolution: ``NAME.depth.npy`` (float32, NaN = unknown), ``NAME.conf.npy``, and
    ``NAME.depth.png`` (16-bit, value = depth / scale, 0 = unknown) with the scales in ``depth_scale.json``."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scales, stems = {}, file_stems(recon.names)
    for i, (name, stem) in enumerate(zip(recon.names, stems)):
        depth = depth_to_original(recon, i, recon.depth[i], cv2.INTER_LINEAR)
        conf = depth_to_original(recon, i, recon.depth_conf[i], cv2.INTER_NEAREST)
        finite = np.isfinite(depth) & (depth > 0)
        scale = float(depth[finite].max() / 65535.0) if finite.any() else 1.0
        png = np.zeros(depth.shape, np.uint16)
        png[finite] = np.clip(np.round(depth[finite] / scale), 1, 65535).astype(np.uint16)
        for suffix, array in ((".depth.npy", depth), (".conf.npy", conf)):
            with atomic_path(folder / f"{stem}{suffix}") as tmp, open(tmp, "wb") as fh:
                np.save(fh, array.astype(np.float32))
        with atomic_path(folder / f"{stem}.depth.png") as tmp:
            if not cv2.imwrite(str(tmp), png):
                raise OSError(f"could not write {folder / stem}.depth.png")
        scales[name] = scale
        release_pages(recon.depth, recon.depth_conf)  # a long input's maps on disk stay there
    with atomic_path(folder / "depth_scale.json") as tmp:
        tmp.write_text(strict_json({"png_depth_unit": scales, "files": dict(zip(recon.names, stems)),
                                    "note": "depth = png_value * png_depth_unit[name]; files[name]: the stem of "
                                            "name's .depth.npy, .conf.npy and .depth.png"}))
    return folder


def file_stems(names: list[str]) -> list[str]:
    """A distinct file-name stem per view name: ``a/img_1.png`` → ``a_img_1``, or ``a_img_1.png`` when two
    names differ only in their extension; names that still meet (``a/b.png`` and ``a_b.png``) get ``~2``, ``~3``
    … after the first of them, in view order (``depth_scale.json`` lists each view's stem)."""
    stems = [Path(n).with_suffix("").as_posix().replace("/", "_") for n in names]
    if len(set(stems)) < len(stems):
        stems = [Path(n).as_posix().replace("/", "_") for n in names]
    taken = set(stems)
    seen: set[str] = set()
    for i, stem in enumerate(stems):
        if stem in seen:
            k = 2
            while f"{stem}~{k}" in taken:
                k += 1
            stems[i] = f"{stem}~{k}"
            taken.add(stems[i])
        seen.add(stems[i])
    return stems


def extra_folder_exports() -> list[tuple[str, Callable[[Path, Reconstruction, PointCloud], object]]]:
    """Exports written only into an output folder: COLMAP model and nerfstudio ``transforms.json``."""
    from app.exports import colmap_nerfstudio as export_formats

    return [
        ("sparse/0", export_formats.write_colmap),
        ("transforms.json", export_formats.write_transforms_json),
    ]
