"""The one scene structure every reader returns and every writer and the dataset layer consume.

Conventions (``docs/architecture.md``): extrinsics camera-from-world, OpenCV axes, ``[N, 3, 4]``; intrinsics in pixels of
the stored image, ``[N, 3, 3]``, pixel centres at integer coordinates (COLMAP and nerfstudio put them at
half-integers; their readers and writers shift by 0.5); depth = z in the camera frame, 0 where unknown.
Images are kept either as file paths (read lazily with :func:`mum.io.read_image`) or as ``uint8`` RGB arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class Scene:
    """``N`` views of one scene.

    Attributes:
        names: per-view file names (unique), e.g. ``"000003.png"``.
        widths, heights: per-view image size in pixels, ``[N]`` int.
        image_paths: per-view files, or ``None`` when ``images`` holds the pixels.
        images: per-view ``uint8`` RGB ``[H, W, 3]`` arrays, or ``None`` (read from ``image_paths``).
        extrinsics: camera-from-world ``[N, 3, 4]`` float64, or ``None`` for unposed views.
        intrinsics: ``[N, 3, 3]`` float64 pixels, or ``None``.
        depths: per-view ``float32 [H, W]`` z-depth (0 = unknown), or ``None``.
        masks: per-view ``bool [H, W]`` (True = valid geometry), or ``None``.
        distortion: per-view dict of distortion coefficients (``k1, k2, p1, p2, ...``) the reader found but
            the pinhole intrinsics ignore, or ``None``.
        points3d, points_rgb: optional sparse points ``[P, 3]`` float64 and colours ``[P, 3]`` uint8.
        meta: free-form provenance (``seed``, ``kind``, ``source``...).
    """

    names: list[str]
    widths: np.ndarray
    heights: np.ndarray
    image_paths: list[Path] | None = None
    images: list[np.ndarray] | None = None
    extrinsics: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    depths: list[np.ndarray] | None = None
    masks: list[np.ndarray] | None = None
    distortion: list[dict] | None = None
    points3d: np.ndarray | None = None
    points_rgb: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.names)
        self.widths = np.asarray(self.widths, dtype=np.int64).reshape(n)
        self.heights = np.asarray(self.heights, dtype=np.int64).reshape(n)
        if self.image_paths is not None:
            self.image_paths = [Path(p) for p in self.image_paths]
        if self.extrinsics is not None:
            self.extrinsics = np.asarray(self.extrinsics, dtype=np.float64)[..., :3, :4].reshape(n, 3, 4)
        if self.intrinsics is not None:
            self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64).reshape(n, 3, 3)
        for name, value in (("image_paths", self.image_paths), ("images", self.images), ("depths", self.depths),
                            ("masks", self.masks), ("distortion", self.distortion)):
            if value is not None and len(value) != n:
                raise ValueError(f"Scene.{name} has {len(value)} entries for {n} views")
        if self.image_paths is None and self.images is None:
            raise ValueError("Scene needs image_paths or images")

    @property
    def num_views(self) -> int:
        return len(self.names)

    @property
    def has_cameras(self) -> bool:
        return self.extrinsics is not None and self.intrinsics is not None

    def image(self, i: int) -> np.ndarray:
        """View ``i`` as ``uint8`` RGB ``[H, W, 3]`` (read from disk when the scene holds paths)."""
        if self.images is not None:
            return self.images[i]
        from mum.io import read_image

        return read_image(self.image_paths[i])

    def cam_from_world_4x4(self) -> np.ndarray:
        """Extrinsics as ``[N, 4, 4]``."""
        if self.extrinsics is None:
            raise ValueError("scene has no extrinsics")
        out = np.tile(np.eye(4), (self.num_views, 1, 1))
        out[:, :3, :4] = self.extrinsics
        return out

    def subset(self, indices: Sequence[int]) -> "Scene":
        """The views ``indices`` (in that order) as a new scene sharing the arrays' data."""
        idx = [int(i) for i in indices]

        def pick(seq):
            return None if seq is None else [seq[i] for i in idx]

        return replace(
            self,
            names=[self.names[i] for i in idx],
            widths=self.widths[idx],
            heights=self.heights[idx],
            image_paths=pick(self.image_paths),
            images=pick(self.images),
            extrinsics=None if self.extrinsics is None else self.extrinsics[idx],
            intrinsics=None if self.intrinsics is None else self.intrinsics[idx],
            depths=pick(self.depths),
            masks=pick(self.masks),
            distortion=pick(self.distortion),
            meta=dict(self.meta),
        )

    def with_images_loaded(self) -> "Scene":
        """A copy holding every image as an array (reads files once)."""
        return replace(self, images=[self.image(i) for i in range(self.num_views)], meta=dict(self.meta))
