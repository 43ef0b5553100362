"""Readers and writers for real multi-view data, all speaking :class:`mum.data.scene.Scene`.

=================  ================================  ==================================
format             reader                            writer
=================  ================================  ==================================
image folder       :func:`read_image_folder`         :func:`write_image_folder`
video              :func:`read_video`                :func:`write_video`
COLMAP sparse      :func:`read_colmap`               :func:`write_colmap`
transforms.json    :func:`read_transforms_json`      :func:`write_transforms_json`
=================  ================================  ==================================

:func:`read_scene` picks the reader from what a path contains.
"""

from __future__ import annotations

import os
from pathlib import Path

from mum.data.readers.colmap import find_colmap_model, read_colmap, write_colmap
from mum.data.readers.folder import read_image_folder, write_image_folder
from mum.data.readers.nerfstudio import read_transforms_json, write_transforms_json
from mum.data.readers.video import read_video, write_video
from mum.data.scene import Scene
from mum.errors import UserError

FORMATS = ("folder", "colmap", "transforms", "video")
WRITERS = {"folder": write_image_folder, "colmap": write_colmap, "transforms": write_transforms_json, "video": write_video}


def read_scene(path: str | os.PathLike, **kwargs) -> Scene:
    """Read a video file, a ``transforms.json`` (or a folder holding one), a COLMAP model (a model folder or a
    folder with ``sparse/0`` or ``sparse``), or else an image folder."""
    from mum.io import is_video_path

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    if p.is_file():
        if p.name.endswith(".json"):
            return read_transforms_json(p, **kwargs)
        if is_video_path(p):
            return read_video(p, **kwargs)
        raise UserError(f"{p}: not a video or transforms.json (give a folder for images)")
    if (p / "transforms.json").is_file():
        return read_transforms_json(p / "transforms.json", **kwargs)
    if find_colmap_model(p) is not None:
        return read_colmap(p, **kwargs)
    return read_image_folder(p, **kwargs)


__all__ = ["FORMATS", "WRITERS", "read_colmap", "read_image_folder", "read_scene", "read_transforms_json", "read_video",
           "write_colmap", "write_image_folder", "write_transforms_json", "write_video"]
