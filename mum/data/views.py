"""Crop and resize a training or evaluation view so that image, depth, mask and intrinsics stay consistent.

The crop and resize is the users' one, :class:`mum.io.ViewTransform` (image resampled by
:func:`mum.io.warp_view`, intrinsics mapped by the transform); this module adds the choice of the crop box
(centred, or random for augmentation) and the resampling of depth and masks, with exact nearest-neighbour (no
mixing of foreground and background depths).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from mum.io import ViewTransform, warp_view


class CropBox(NamedTuple):
    """Integer pixel box ``x0, y0, width, height`` in the source image."""

    x0: int
    y0: int
    width: int
    height: int


def crop_box(width: int, height: int, aspect: float, scale: float = 1.0, rng: np.random.Generator | None = None) -> CropBox:
    """The largest box of aspect ``aspect`` (width / height) inside ``width × height``, shrunk by ``scale``;
    centred, or at a random position when ``rng`` is given."""
    if width / height > aspect:
        ch = height * scale
        cw = ch * aspect
    else:
        cw = width * scale
        ch = cw / aspect
    cw, ch = max(1, min(width, int(round(cw)))), max(1, min(height, int(round(ch))))
    if rng is None:
        x0, y0 = (width - cw) // 2, (height - ch) // 2
    else:
        x0, y0 = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
    return CropBox(x0, y0, cw, ch)


def crop_resize(image: np.ndarray, intrinsics: np.ndarray | None, out_width: int, out_height: int,
                box: CropBox | None = None, depth: np.ndarray | None = None, mask: np.ndarray | None = None) -> dict:
    """Crop ``box`` (default: the centred box of the output aspect) and resize to ``out_width × out_height``.

    Args:
        image: ``[H, W, 3]`` uint8 or float; depth ``[H, W]`` float (0 = unknown); mask ``[H, W]`` bool;
            intrinsics ``[3, 3]`` pixels of ``image``.
    Returns:
        dict with ``image``, ``intrinsics`` (in pixels of the output), ``depth``, ``mask`` (``None`` when not
        given) and ``transform`` (the :class:`mum.io.ViewTransform`).
    """
    h, w = image.shape[:2]
    box = box or crop_box(w, h, out_width / out_height)
    tf = ViewTransform.crop((w, h), (out_width, out_height), box.x0, box.y0, box.width, box.height)
    sl = (slice(box.y0, box.y0 + box.height), slice(box.x0, box.x0 + box.width))
    out = {"image": warp_view(image, tf), "transform": tf, "depth": None, "mask": None,
           "intrinsics": None if intrinsics is None else tf.intrinsics_to_network(intrinsics)}
    if depth is not None:
        out["depth"] = cv2.resize(depth[sl].astype(np.float32), (out_width, out_height), interpolation=cv2.INTER_NEAREST_EXACT)
    if mask is not None:
        m = cv2.resize(mask[sl].astype(np.uint8), (out_width, out_height), interpolation=cv2.INTER_NEAREST_EXACT)
        out["mask"] = m.astype(bool)
    if out["depth"] is not None and out["mask"] is not None:
        out["mask"] &= out["depth"] > 0
    return out
