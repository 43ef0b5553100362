"""Helpers shared by the readers and writers: image headers, writing views, ``cameras.json``."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np

from mum.data.readers.schema import check_camera
from mum.data.scene import Scene
from mum.errors import UserError
from mum.schema import as_list, as_matrix, as_object, as_text, as_whole, get, read_json, shown

CAMERAS_JSON = "cameras.json"
REFERENCE_JSON = "cameras_reference.json"


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file in display orientation (EXIF rotation applied), from its header.
    Raises :class:`UserError` naming the file when it is missing, unreadable, too small or above the project's
    pixel limit (:func:`mum.io.check_image_header`, the loader's own check)."""
    from mum.io import check_image_header

    if not Path(path).is_file():
        raise UserError(f"{path}: no such image file")
    w, h = check_image_header(path)
    if w < 2 or h < 2:
        raise UserError(f"{path}: image is too small ({w}x{h})")
    return w, h


def warn_skip(path: Path, problem: str) -> None:
    warnings.warn(f"{path}: {problem}; skipping this view", UserWarning, stacklevel=3)


# everything a scene writer (folder, COLMAP, transforms.json) puts in its folder: what overwriting may replace
SCENE_ENTRIES = ("images", "depth", "masks", "sparse", "cameras.json", "transforms.json")


def prepare_dir(folder: str | os.PathLike, overwrite: bool) -> Path:
    """Create ``folder``; refuse a non-empty one unless ``overwrite``, which removes only the entries a scene
    writer writes (:data:`SCENE_ENTRIES`; a link is removed, never what it points to): other files stay."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise UserError(f"{folder}: exists and is not empty (pass overwrite=True / --overwrite)")
        for name in SCENE_ENTRIES:
            entry = folder / name
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            elif entry.is_dir():
                shutil.rmtree(entry)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def png_names(scene: Scene) -> list[str]:
    """Per-view output file names: the view's stem with ``.png`` (lossless)."""
    names = [Path(n).stem + ".png" for n in scene.names]
    if len(set(names)) != len(names):
        names = [f"{i:05d}_{n}" for i, n in enumerate(names)]
    return names


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def write_views(scene: Scene, folder: Path, names: list[str]) -> None:
    """Every view as ``folder/NAME`` (PNG)."""
    for i, name in enumerate(names):
        write_png(folder / name, scene.image(i))


def write_depth_npy(folder: Path, stem: str, depth: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{stem}.depth.npy", np.asarray(depth, np.float32))


def write_mask_png(folder: Path, stem: str, mask: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{stem}.png"), np.asarray(mask, np.uint8) * 255)


def read_mask_png(path: Path) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise UserError(f"{path}: not a readable mask image")
    return m > 127


def cameras_json(scene: Scene, names: list[str] | None = None) -> dict:
    """The project's ``cameras.json`` (same layout as ``app.exports.project_formats``): per image ``name``, ``width``,
    ``height``, ``K`` 3×3 (pixel centres at integers) and ``cam_from_world`` 4×4 (OpenCV axes)."""
    names = names or scene.names
    E = scene.cam_from_world_4x4()
    return {
        "convention": "cam_from_world maps world to camera, OpenCV axes (x right, y down, z forward); K in pixels "
        "of the image with pixel centres at integer coordinates",
        "meta": {k: v for k, v in scene.meta.items() if isinstance(v, (int, float, str, bool))},
        "images": [
            {"name": n, "width": int(scene.widths[i]), "height": int(scene.heights[i]),
             "K": scene.intrinsics[i].tolist(), "cam_from_world": E[i].tolist()}
            for i, n in enumerate(names)
        ],
    }


def load_cameras_file(path: Path, require_poses: bool = True) -> dict[str, dict]:
    """``name → {"K", "cam_from_world", "width", "height", "where"}`` from a ``cameras.json`` (project layout:
    ``{"images": [{"name", "width", "height", "K", "cam_from_world"}]}``) or a ``cameras_reference.json``
    (``demo/`` layout: ``{"cameras": {name: {"width", "height", "intrinsic", "extrinsic"}}}``, COLMAP principal
    point, shifted by −0.5 here). Every entry is checked (:mod:`mum.data.readers.schema`: types, finite
    values, :func:`~mum.data.readers.schema.check_camera`'s ranges); the first problem is a :class:`UserError`
    naming the file and the entry (``where``, also returned per entry for later messages). A name given twice
    is refused. ``require_poses=False``: ``cam_from_world`` may be absent (``None``)."""
    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict) and "images" in data:
        items = [(f"{path}: images[{i}]", im) for i, im in enumerate(as_list(data["images"], str(path), "images"))]
        keys = ("K", "cam_from_world", 0.0)
    elif isinstance(data, dict) and "cameras" in data:
        cameras = data["cameras"]
        if not isinstance(cameras, dict):
            raise UserError(f"{path}: 'cameras' is not an object of name: camera ({shown(cameras)})")
        items = [(f"{path}: cameras[{shown(name, 80)}]", dict(cam, name=name) if isinstance(cam, dict) else cam)
                 for name, cam in cameras.items()]
        keys = ("intrinsic", "extrinsic", 0.5)
    else:
        raise UserError(f"{path}: not a cameras file (expected an object with an 'images' list or a 'cameras' "
                        f"object)")
    if not items:
        raise UserError(f"{path}: names no camera")
    k_key, pose_key, centre_shift = keys
    out: dict[str, dict] = {}
    for where, im in items:
        im = as_object(im, where)
        name = as_text(get(im, "name", where), where, "name")
        if "images" in data:
            where += f" ({shown(name, 80)})"
        width = as_whole(get(im, "width", where), where, "width")
        height = as_whole(get(im, "height", where), where, "height")
        K = as_matrix(get(im, k_key, where), where, k_key, [(3, 3)])
        K[:2, 2] -= centre_shift
        pose = get(im, pose_key, where) if require_poses else get(im, pose_key, where, None)
        if pose is not None:
            pose = as_matrix(pose, where, pose_key, [(4, 4), (3, 4)])
            pose = pose if pose.shape == (4, 4) else np.vstack([pose, [0, 0, 0, 1]])
        check_camera(where, width, height, K, pose)
        if name in out:
            raise UserError(f"{where}: the name is given twice (also {out[name]['where']})")
        out[name] = {"K": K, "cam_from_world": pose, "width": width, "height": height, "where": where}
    return out


def attach_depth_masks(scene: Scene, scene_dir: Path) -> Scene:
    """Attach ``scene_dir/depth/STEM.depth.npy`` and ``scene_dir/masks/STEM.png`` when every view has one."""
    stems = [Path(n).stem for n in scene.names]
    depth_dir, mask_dir = scene_dir / "depth", scene_dir / "masks"
    if depth_dir.is_dir() and all((depth_dir / f"{s}.depth.npy").is_file() for s in stems):
        scene.depths = [np.load(depth_dir / f"{s}.depth.npy").astype(np.float32) for s in stems]
    if mask_dir.is_dir() and all((mask_dir / f"{s}.png").is_file() for s in stems):
        scene.masks = [read_mask_png(mask_dir / f"{s}.png") for s in stems]
    return scene
