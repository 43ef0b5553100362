"""COLMAP sparse models (text or binary, via ``pycolmap``).

COLMAP puts pixel centres at half-integers, the project at integers: principal points are shifted by 0.5
both ways. Distortion parameters of non-pinhole models are kept in ``Scene.distortion`` and ignored by the
pinhole intrinsics. Layout: ``SCENE/sparse/0/{cameras,images,points3D}.{bin,txt}`` and ``SCENE/images/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mum.data.readers.common import attach_depth_masks, png_names, prepare_dir, warn_skip, write_views
from mum.data.scene import Scene
from mum.errors import UserError

MODEL_FILES = ("cameras", "images", "points3D")
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


def _is_model(d: Path) -> bool:
    return all((d / f"{n}.bin").is_file() for n in MODEL_FILES) or all((d / f"{n}.txt").is_file() for n in MODEL_FILES)


def find_colmap_model(path: str | os.PathLike) -> Path | None:
    """The model folder at ``path``, ``path/sparse/0`` or ``path/sparse`` (first that has the three files)."""
    p = Path(path)
    for d in (p, p / "sparse" / "0", p / "sparse"):
        if d.is_dir() and _is_model(d):
            return d
    return None


def read_colmap(path: str | os.PathLike, images_dir: str | os.PathLike | None = None, strict: bool = False,
                load: bool = False, require_images: bool = True) -> Scene:
    """A COLMAP model as a posed :class:`Scene` (registered images, sorted by name; sparse points attached).

    ``images_dir`` defaults to ``images/`` next to ``sparse/`` (or beside the model). Images the model names
    but the folder lacks are skipped with a warning (``strict`` raises instead); no image at all raises
    :class:`UserError`, as does a folder without a model. ``require_images=False``: the cameras alone (a model
    whose images lie elsewhere, e.g. ``mum-reconstruct --cameras``): every registered image is kept, whether
    its file exists or not, and nothing is read from the images folder."""
    import pycolmap

    model_dir = find_colmap_model(path)
    if model_dir is None:
        raise UserError(f"{path}: no COLMAP model (cameras/images/points3D .bin or .txt) here or in sparse/0")
    if images_dir is None:
        candidates = [model_dir.parent.parent / "images", model_dir.parent / "images", model_dir / "images"]
        images_dir = next((c for c in candidates if c.is_dir()), candidates[0])
    images_dir = Path(images_dir)
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError for malformed files
        raise UserError(f"{model_dir}: cannot read COLMAP model ({str(exc).splitlines()[0][:120]})") from None
    names, paths, E, K, widths, heights, dist = [], [], [], [], [], [], []
    for image in sorted(rec.images.values(), key=lambda im: im.name):
        if not image.has_pose:
            continue
        file = images_dir / image.name
        if require_images and not file.is_file():
            if strict:
                raise UserError(f"{file}: image named by the COLMAP model {model_dir} is missing")
            warn_skip(file, f"named by the COLMAP model {model_dir} but missing")
            continue
        cam = image.camera
        k = np.asarray(cam.calibration_matrix(), np.float64).copy()
        k[:2, 2] -= 0.5
        names.append(image.name)
        paths.append(file)
        E.append(np.asarray(image.cam_from_world().matrix(), np.float64))
        K.append(k)
        widths.append(int(cam.width))
        heights.append(int(cam.height))
        dist.append({} if cam.model_name in PINHOLE_MODELS else {"model": cam.model_name, "params": [float(x) for x in cam.params]})
    if not names:
        raise UserError(f"{model_dir}: no registered image of the model was found in {images_dir}"
                        if require_images else f"{model_dir}: the model has no registered image")
    pts = [p for _, p in sorted(rec.points3D.items())]
    scene = Scene(
        names=names, widths=widths, heights=heights, image_paths=paths, extrinsics=np.stack(E), intrinsics=np.stack(K),
        distortion=dist if any(dist) else None,
        points3d=np.array([p.xyz for p in pts], np.float64).reshape(-1, 3) if pts else None,
        points_rgb=np.array([p.color for p in pts], np.uint8).reshape(-1, 3) if pts else None,
        meta={"source": str(model_dir)},
    )
    if require_images:
        attach_depth_masks(scene, images_dir.parent)
    return scene.with_images_loaded() if load else scene


def write_colmap(scene: Scene, folder: str | os.PathLike, overwrite: bool = False, text: bool = True, binary: bool = True) -> Path:
    """``folder/images/*.png`` and a COLMAP model in ``folder/sparse/0`` (binary and/or text): one PINHOLE
    camera per view and the scene's sparse points (without tracks) if it has any. Returns ``folder``."""
    import pycolmap

    if not scene.has_cameras:
        raise UserError("a COLMAP model needs cameras; this scene has none")
    folder = prepare_dir(folder, overwrite)
    names = png_names(scene)
    write_views(scene, folder / "images", names)
    rec = pycolmap.Reconstruction()
    for i, name in enumerate(names):
        k = scene.intrinsics[i]
        params = [float(k[0, 0]), float(k[1, 1]), float(k[0, 2]) + 0.5, float(k[1, 2]) + 0.5]
        cam = pycolmap.Camera(model="PINHOLE", width=int(scene.widths[i]), height=int(scene.heights[i]), params=params, camera_id=i + 1)
        rec.add_camera_with_trivial_rig(cam)
        T = scene.extrinsics[i]
        image = pycolmap.Image(name=name, camera_id=i + 1, image_id=i + 1)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3]))
    if scene.points3d is not None:
        rgb = scene.points_rgb if scene.points_rgb is not None else np.full((len(scene.points3d), 3), 128, np.uint8)
        for xyz, c in zip(scene.points3d, rgb):
            rec.add_point3D(np.asarray(xyz, np.float64), pycolmap.Track(), np.asarray(c, np.uint8))
    out = folder / "sparse" / "0"
    out.mkdir(parents=True, exist_ok=True)
    if binary:
        rec.write_binary(str(out))
    if text:
        rec.write_text(str(out))
    return folder
