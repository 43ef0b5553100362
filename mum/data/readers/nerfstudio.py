"""nerfstudio / instant-ngp ``transforms.json``.

Per frame: ``file_path``, ``transform_matrix`` (camera-to-world, OpenGL camera axes: x right, y up, z back),
intrinsics ``fl_x, fl_y, cx, cy, w, h`` (or instant-ngp's ``camera_angle_x``) per frame or at the top level,
optional ``depth_file_path`` (16-bit PNG × ``depth_unit_scale_factor``, or ``.npy``) and ``mask_path``.
Principal points use the half-integer pixel-centre convention there (shifted by 0.5 here).
"""

from __future__ import annotations

import json
import math
import os
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
from mum.data.scene import Scene
from mum.errors import UserError

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


def read_transforms_json(path: str | os.PathLike, load: bool = False, require_images: bool = True) -> Scene:
    """A ``transforms.json`` as a posed :class:`Scene` (frames in file order).

    Missing required fields (``frames``, ``file_path``, ``transform_matrix``, a focal length) raise
    :class:`UserError` naming the file and frame; frames whose image file is missing or unreadable are skipped
    with a warning; no usable frame raises. ``require_images=False``: the cameras alone (the images lie
    elsewhere, e.g. ``mum-reconstruct --cameras``): every frame is kept; its size comes from ``w``/``h`` (the
    image file's header only when those are absent and the file exists)."""
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    try:
        top = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc})") from None
    frames = top.get("frames") if isinstance(top, dict) else None
    if not isinstance(frames, list) or not frames:
        raise UserError(f"{path}: has no 'frames' list")
    base = path.parent
    names, paths, E, K, W, H, depths, masks = [], [], [], [], [], [], [], []
    for i, fr in enumerate(frames):
        where = f"{path}: frame {i}"
        for key in ("file_path", "transform_matrix"):
            if key not in fr:
                raise UserError(f"{where} lacks '{key}'")
        file = _resolve(base, fr["file_path"])
        w, h = _field(fr, top, "w"), _field(fr, top, "h")
        if require_images or w is None or h is None:
            try:
                w0, h0 = image_size(file)
            except UserError as exc:
                if not require_images:
                    raise UserError(f"{where} has no 'w'/'h' and its image is not readable ({exc})") from None
                warn_skip(file, str(exc).split(": ", 1)[-1])
                continue
            w, h = w or w0, h or h0
        fx, fy = _field(fr, top, "fl_x"), _field(fr, top, "fl_y")
        if fx is None:
            angle = _field(fr, top, "camera_angle_x")
            if angle is None:
                raise UserError(f"{where} has no focal length ('fl_x' or 'camera_angle_x')")
            fx = 0.5 * w / math.tan(0.5 * float(angle))
        if fy is None:
            angle_y = _field(fr, top, "camera_angle_y")
            fy = 0.5 * h / math.tan(0.5 * float(angle_y)) if angle_y is not None else fx
        cx, cy = _field(fr, top, "cx"), _field(fr, top, "cy")
        cx = w / 2 if cx is None else cx
        cy = h / 2 if cy is None else cy
        try:
            c2w = np.array(fr["transform_matrix"], np.float64)
            if c2w.shape == (3, 4):
                c2w = np.vstack([c2w, [0, 0, 0, 1]])
            if c2w.shape != (4, 4):
                raise ValueError(f"shape {c2w.shape}")
            cam_from_world = np.linalg.inv(c2w @ OPENGL_FROM_OPENCV)
        except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
            raise UserError(f"{where} has a malformed 'transform_matrix' ({exc})") from None
        names.append(file.name)
        paths.append(file)
        E.append(cam_from_world[:3])
        K.append(np.array([[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1]], np.float64))
        W.append(int(w))
        H.append(int(h))
        dfile = _field(fr, {}, "depth_file_path") if require_images else None
        depths.append(_read_depth(base / dfile, float(_field(fr, top, "depth_unit_scale_factor") or 1e-3)) if dfile else None)
        mfile = fr.get("mask_path") if require_images else None
        masks.append(read_mask_png(base / mfile) if mfile else None)
    if not names:
        raise UserError(f"{path}: none of the frames' images could be read")
    scene = Scene(names=names, widths=W, heights=H, image_paths=paths, extrinsics=np.stack(E), intrinsics=np.stack(K),
                  depths=depths if all(d is not None for d in depths) else None,
                  masks=masks if all(m is not None for m in masks) else None, meta={"source": str(path)})
    return scene.with_images_loaded() if load else scene


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
    (folder / "transforms.json").write_text(json.dumps(data, indent=1))
    return folder
