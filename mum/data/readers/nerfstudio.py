"""nerfstudio / instant-ngp ``transforms.json``.

Per frame: ``file_path``, ``transform_matrix`` (camera-to-world, OpenGL camera axes: x right, y up, z back),
intrinsics ``fl_x, fl_y, cx, cy, w, h`` (or instant-ngp's ``camera_angle_x``) per frame or at the top level,
optional ``depth_file_path`` (16-bit PNG × ``depth_unit_scale_factor``, or ``.npy``) and ``mask_path``.
Principal points use the half-integer pixel-centre convention there (shifted by 0.5 here).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from mum.data.readers.common import (
    image_size,
    png_names,
    prepare_dir,
    read_mask_png,
    warn_skip,
    write_mask_png,
    write_views,
)
from mum.data.readers.schema import check_camera
from mum.data.scene import Scene
from mum.errors import UserError
from mum.schema import as_list, as_matrix, as_number, as_object, as_text, as_whole, get, read_json, shown, strict_json

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
IMAGE_GUESS_SUFFIXES = (".png", ".jpg", ".jpeg")


def _resolve(base: Path, file_path: str) -> Path:
    p = base / file_path
    if p.suffix == "" and not p.is_file():
        for s in IMAGE_GUESS_SUFFIXES:
            if p.with_suffix(s).is_file():
                return p.with_suffix(s)
    return p


def _field(frame: dict, top: dict, key: str):
    return frame[key] if key in frame else top.get(key)


DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def read_transforms_json(path: str | os.PathLike, load: bool = False, require_images: bool = True,
                         sizes: Mapping[str, tuple[int, int]] | None = None) -> Scene:
    """A ``transforms.json`` as a posed :class:`Scene` (frames in file order).

    Every field is checked before use (:mod:`mum.data.readers.schema`): ``frames`` a non-empty list of
    objects, ``file_path`` a string, ``transform_matrix`` a 4×4 (or 3×4) matrix of finite numbers with a
    rigid rotation, the intrinsics (``fl_x``/``fl_y`` or ``camera_angle_x``/``_y`` in (0, π), ``cx``, ``cy``,
    ``w``, ``h``) finite numbers in range; the first problem raises :class:`UserError` naming the file and the
    frame. Frames whose image file is missing or unreadable are skipped with a warning; no usable frame raises.
    Non-zero distortion coefficients (``k1`` … ``p2``) are kept in ``Scene.distortion`` (the pinhole intrinsics
    ignore them). ``require_images=False``: the cameras alone (the images lie elsewhere, e.g.
    ``mum-reconstruct --cameras``): every frame is kept; its size comes from ``w``/``h`` (the image file's header
    only when those are absent and the file exists, else ``sizes`` by the file's name: the images given
    elsewhere)."""
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    top = as_object(read_json(path), str(path))
    frames = as_list(get(top, "frames", str(path)), str(path), "frames", nonempty=True)
    base = path.parent
    names, paths, E, K, W, H, depths, masks, distortion = [], [], [], [], [], [], [], [], []
    for i, fr in enumerate(frames):
        where = f"{path}: frames[{i}]"
        fr = as_object(fr, where)
        file_path = as_text(get(fr, "file_path", where), where, "file_path")
        where += f" ({shown(file_path, 80)})"
        c2w = as_matrix(get(fr, "transform_matrix", where), where, "transform_matrix", [(4, 4), (3, 4)])
        if c2w.shape == (4, 4) and not np.allclose(c2w[3], [0, 0, 0, 1], rtol=0, atol=1e-9):
            raise UserError(f"{where}: 'transform_matrix' has a last row other than [0, 0, 0, 1]")
        value = {key: _field(fr, top, key) for key in ("w", "h")}
        w, h = (None if value[k] is None else as_whole(value[k], where, k) for k in ("w", "h"))
        file = _resolve(base, file_path)
        if require_images or w is None or h is None:
            try:
                w0, h0 = image_size(file)
            except UserError as exc:
                if not require_images and sizes and file.name in sizes:
                    w0, h0 = sizes[file.name]  # the image is elsewhere: its size as given
                elif not require_images:
                    raise UserError(f"{where}: has no 'w'/'h' and its image is not readable ({exc})") from None
                else:
                    warn_skip(file, str(exc).split(": ", 1)[-1])
                    continue
            w, h = w or w0, h or h0
        fx, fy = _focal(fr, top, where, "x", w), _focal(fr, top, where, "y", h)
        if fx is None:
            raise UserError(f"{where}: has no focal length ('fl_x' or 'camera_angle_x')")
        fy = fx if fy is None else fy
        cx, cy = (_number(fr, top, where, key) for key in ("cx", "cy"))
        cx = w / 2 if cx is None else cx
        cy = h / 2 if cy is None else cy
        intrinsics = np.array([[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1]], np.float64)
        R = c2w[:3, :3] @ OPENGL_FROM_OPENCV[:3, :3]  # world-from-camera, OpenCV axes
        cam_from_world = np.eye(4)
        cam_from_world[:3, :3] = R.T  # rigid inverse; a rotation that is not one is refused just below
        cam_from_world[:3, 3] = -R.T @ c2w[:3, 3]
        check_camera(where, w, h, intrinsics, cam_from_world)
        coefficients = {key: _number(fr, top, where, key) for key in DISTORTION_KEYS}
        coefficients = {k: v for k, v in coefficients.items() if v}
        distortion.append({"model": str(_field(fr, top, "camera_model") or "OPENCV"), **coefficients}
                          if coefficients else {})
        names.append(file.name)
        paths.append(file)
        E.append(cam_from_world[:3])
        K.append(intrinsics)
        W.append(w)
        H.append(h)
        dfile = _text(fr, {}, where, "depth_file_path") if require_images else None
        unit = _number(fr, top, where, "depth_unit_scale_factor", lo=1e-12, hi=1e6)
        depths.append(_read_depth(base / dfile, 1e-3 if unit is None else unit) if dfile else None)
        mfile = _text(fr, {}, where, "mask_path") if require_images else None
        masks.append(read_mask_png(base / mfile) if mfile else None)
    if not names:
        raise UserError(f"{path}: none of the frames' images could be read")
    scene = Scene(names=names, widths=W, heights=H, image_paths=paths, extrinsics=np.stack(E), intrinsics=np.stack(K),
                  depths=depths if all(d is not None for d in depths) else None,
                  masks=masks if all(m is not None for m in masks) else None,
                  distortion=distortion if any(distortion) else None, meta={"source": str(path)})
    return scene.with_images_loaded() if load else scene


def _number(frame: dict, top: dict, where: str, key: str, lo: float = -math.inf, hi: float = math.inf):
    """The frame's (else the file's) finite number ``key`` in ``[lo, hi]``, or ``None`` when neither has it."""
    value = _field(frame, top, key)
    return None if value is None else as_number(value, where, key, lo, hi)


def _text(frame: dict, top: dict, where: str, key: str):
    value = _field(frame, top, key)
    return None if value is None else as_text(value, where, key)


def _focal(frame: dict, top: dict, where: str, axis: str, side: int):
    """``fl_<axis>``, else the focal length of ``camera_angle_<axis>`` (radians, in (0, π)), else ``None``."""
    focal = _number(frame, top, where, f"fl_{axis}")
    if focal is not None:
        return focal
    angle = _number(frame, top, where, f"camera_angle_{axis}")
    if angle is None:
        return None
    if not 0 < angle < math.pi:
        raise UserError(f"{where}: 'camera_angle_{axis}' = {angle:g} is not an angle in (0, π) radians")
    return 0.5 * side / math.tan(0.5 * angle)


def _read_depth(path: Path, unit: float) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path).astype(np.float32)
    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise UserError(f"{path}: not a readable depth image")
    return d.astype(np.float32) * unit


def write_transforms_json(scene: Scene, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """``folder/transforms.json`` with ``folder/images/*.png``; depth as 16-bit ``folder/depth/STEM.png``
    (``depth_unit_scale_factor`` chosen so the largest depth fits, at most 1e-3 m) and masks as
    ``folder/masks/STEM.png`` when the scene has them. Returns ``folder``."""
    if not scene.has_cameras:
        raise UserError("transforms.json needs cameras; this scene has none")
    folder = prepare_dir(folder, overwrite)
    names = png_names(scene)
    write_views(scene, folder / "images", names)
    unit = 1e-3
    if scene.depths is not None:
        top = max(float(np.max(d)) for d in scene.depths)
        unit = min(1e-3, max(top, 1e-6) / 65000.0)
    frames = []
    for i, name in enumerate(names):
        k, stem = scene.intrinsics[i], Path(name).stem
        c2w = np.linalg.inv(scene.cam_from_world_4x4()[i]) @ OPENGL_FROM_OPENCV
        fr = {"file_path": f"images/{name}", "transform_matrix": c2w.tolist(), "fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]),
              "cx": float(k[0, 2]) + 0.5, "cy": float(k[1, 2]) + 0.5, "w": int(scene.widths[i]), "h": int(scene.heights[i])}
        if scene.depths is not None:
            (folder / "depth").mkdir(exist_ok=True)
            d = np.clip(np.round(np.asarray(scene.depths[i], np.float64) / unit), 0, 65535).astype(np.uint16)
            cv2.imwrite(str(folder / "depth" / f"{stem}.png"), d)
            fr["depth_file_path"] = f"depth/{stem}.png"
        if scene.masks is not None:
            write_mask_png(folder / "masks", stem, scene.masks[i])
            fr["mask_path"] = f"masks/{stem}.png"
        frames.append(fr)
    data = {"camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "depth_unit_scale_factor": unit, "frames": frames}
    (folder / "transforms.json").write_text(strict_json(data))
    return folder
