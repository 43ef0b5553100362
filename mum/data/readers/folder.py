"""Image folders: ``FOLDER/images/*.png`` (or images directly in ``FOLDER``), with optional cameras
(``cameras.json`` or ``cameras_reference.json`` beside them), depth (``depth/STEM.depth.npy``) and masks
(``masks/STEM.png``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mum.data.readers.common import (
    CAMERAS_JSON,
    REFERENCE_JSON,
    attach_depth_masks,
    cameras_json,
    image_size,
    load_cameras_file,
    png_names,
    prepare_dir,
    warn_skip,
    write_depth_npy,
    write_mask_png,
    write_views,
)
from mum.data.scene import Scene
from mum.errors import UserError


def _layout(path: Path) -> tuple[Path, Path]:
    """``(images_dir, scene_dir)``."""
    if (path / "images").is_dir():
        return path / "images", path
    return path, path


def read_image_folder(path: str | os.PathLike, load: bool = False) -> Scene:
    """Every image of a folder (sorted by name) as a :class:`Scene`.

    Unreadable images are skipped with a warning naming them (a folder of unposed views stays usable); a
    folder with no readable image raises :class:`UserError`. Cameras, depth and masks are attached when the
    files above exist (views missing from the camera file are skipped with a warning). ``load`` reads the
    pixels now instead of on demand.
    """
    from mum.io import list_image_paths

    images_dir, scene_dir = _layout(Path(path))
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: no such folder")
    paths, sizes = [], []
    for p in list_image_paths(images_dir):
        try:
            sizes.append(image_size(p))
            paths.append(p)
        except UserError as exc:
            warn_skip(p, str(exc).split(": ", 1)[-1])
    if not paths:
        raise UserError(f"{images_dir}: folder contains no readable images")
    cams = None
    for candidate in (scene_dir / CAMERAS_JSON, scene_dir / REFERENCE_JSON, images_dir / CAMERAS_JSON):
        if candidate.is_file():
            cams = load_cameras_file(candidate)
            kept = [(p, s) for p, s in zip(paths, sizes) if p.name in cams]
            for p in paths:
                if p.name not in cams:
                    warn_skip(p, f"no camera in {candidate.name}")
            if not kept:
                raise UserError(f"{candidate}: names none of the images in {images_dir}")
            paths, sizes = [p for p, _ in kept], [s for _, s in kept]
            break
    names = [p.name for p in paths]
    scene = Scene(
        names=names,
        widths=[s[0] for s in sizes],
        heights=[s[1] for s in sizes],
        image_paths=paths,
        extrinsics=None if cams is None else np.stack([cams[n]["cam_from_world"] for n in names]),
        intrinsics=None if cams is None else np.stack([cams[n]["K"] for n in names]),
        meta={"source": str(scene_dir)},
    )
    attach_depth_masks(scene, scene_dir)
    return scene.with_images_loaded() if load else scene


def write_image_folder(scene: Scene, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``folder/images/*.png``, ``folder/cameras.json`` (when posed), ``folder/depth/STEM.depth.npy``
    and ``folder/masks/STEM.png`` (when present). Returns ``folder``."""
    folder = prepare_dir(folder, overwrite)
    names = png_names(scene)
    write_views(scene, folder / "images", names)
    if scene.has_cameras:
        from mum.schema import strict_json

        (folder / CAMERAS_JSON).write_text(strict_json(cameras_json(scene, names)))
    for i, n in enumerate(names):
        stem = Path(n).stem
        if scene.depths is not None:
            write_depth_npy(folder / "depth", stem, scene.depths[i])
        if scene.masks is not None:
            write_mask_png(folder / "masks", stem, scene.masks[i])
    return folder
