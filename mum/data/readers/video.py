"""Video files: frames sampled uniformly (``num_frames``) or with a ``stride`` (OpenCV), and a writer that
stores the views as frames with a ``VIDEO.cameras.json`` sidecar (read back when present)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mum.data.readers.common import attach_depth_masks, cameras_json, load_cameras_file
from mum.data.scene import Scene
from mum.errors import UserError
from mum.schema import strict_json

CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".cameras.json")


def read_video(path: str | os.PathLike, num_frames: int | None = None, stride: int = 1) -> Scene:
    """Frames of a video as a :class:`Scene` holding ``uint8`` arrays named ``frame_000123.png`` (frame index).

    ``stride`` keeps every n-th frame, then ``num_frames`` (if given) picks that many uniformly. A file that
    cannot be opened or has no decodable frame raises :class:`UserError`. Cameras come from the sidecar
    ``VIDEO.cameras.json`` when it exists."""
    from mum.io import read_video_frames

    path = Path(path)
    names, frames = read_video_frames(path, stride=max(int(stride), 1), max_frames=num_frames)
    E = K = None
    side = sidecar_path(path)
    if side.is_file():
        cams = load_cameras_file(side)
        if all(n in cams for n in names):
            E = np.stack([cams[n]["cam_from_world"] for n in names])
            K = np.stack([cams[n]["K"] for n in names])
    scene = Scene(names=names, widths=[f.shape[1] for f in frames], heights=[f.shape[0] for f in frames],
                  images=frames, extrinsics=E, intrinsics=K, meta={"source": str(path)})
    return attach_depth_masks(scene, path.parent)


def write_video(scene: Scene, path: str | os.PathLike, fps: float = 10.0, overwrite: bool = False) -> Path:
    """Write the views as the frames of ``path`` (all views must share one size; codec from the suffix:
    ``.avi``/``.mkv`` MJPG, ``.mp4``/``.mov`` mp4v) and, for a posed scene, ``path.cameras.json`` with the
    frames named as :func:`read_video` names them. Returns ``path``."""
    path = Path(path)
    if path.suffix.lower() not in CODECS:
        raise UserError(f"{path}: unsupported video suffix (use one of {', '.join(CODECS)})")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: exists (pass overwrite=True / --overwrite)")
    sizes = set(zip(scene.widths.tolist(), scene.heights.tolist()))
    if len(sizes) != 1:
        raise UserError(f"{path}: a video needs views of one size, got {sorted(sizes)}")
    (w, h), = sizes
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*CODECS[path.suffix.lower()]), fps, (int(w), int(h)))
    if not writer.isOpened():
        raise UserError(f"{path}: OpenCV cannot write this video format here")
    for i in range(scene.num_views):
        writer.write(np.ascontiguousarray(scene.image(i)[..., ::-1]))
    writer.release()
    if scene.has_cameras:
        names = [f"frame_{i:06d}.png" for i in range(scene.num_views)]
        sidecar_path(path).write_text(strict_json(cameras_json(scene, names)))
    return path
