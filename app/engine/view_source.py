"""Views of a long input, decoded when a chunk needs them (:mod:`app.engine.chunked`).

A folder of a thousand photos, or a video of thousands of frames, never has all its decoded images in memory:
a :class:`ViewSource` knows the views' names and sizes (from the image headers) and decodes the few a chunk
asks for. A video is decoded once, frame by frame, into a scratch folder of PNG files (lossless, fast
compression) that the caller owns and removes; only one frame is in memory at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from mum.io import (
    _single_video,
    check_image_header,
    iter_video_frames,
    load_images,
    pixel_limit,
    select_image_paths,
    view_names,
)
from mum.errors import UserError


class ViewSource:
    """``names`` and original ``sizes`` (width, height) of every view; :meth:`load` decodes some of them."""

    names: list[str]
    sizes: list[tuple[int, int]]
    photos: list[Path] | None = None  # the input image files, one per view (None: video frames or arrays)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, indices: Sequence[int]) -> list[np.ndarray]:
        raise NotImplementedError

    def aspect(self) -> float:
        """The median width / height of the views (the network input's aspect for every chunk)."""
        aspects = sorted(w / h for w, h in self.sizes)
        return aspects[len(aspects) // 2]


class ArrayViews(ViewSource):
    """Views already decoded (tests, benchmarks, the web app's uploads)."""

    def __init__(self, names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
        self.names, self.arrays = list(names), list(arrays)
        self.sizes = [(a.shape[1], a.shape[0]) for a in self.arrays]

    def load(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.arrays[i] for i in indices]


class FileViews(ViewSource):
    """Image files, decoded on demand by the project's one loader (:func:`mum.io.load_images`); every header
    was checked against the pixel limit when the source was made, so a bad file fails before any work."""

    def __init__(self, paths: Sequence[Path], names: Sequence[str], max_pixels: int | None = None,
                 photos: bool = True) -> None:
        self.paths, self.names, self.max_pixels = [Path(p) for p in paths], list(names), max_pixels
        self.photos = self.paths if photos else None  # a video's decoded frames are not the user's photos
        limit = pixel_limit(max_pixels)
        self.sizes = [check_image_header(p, limit) for p in self.paths]  # nothing above the limit is decoded

    def load(self, indices: Sequence[int]) -> list[np.ndarray]:
        return load_images([self.paths[i] for i in indices], max_pixels=self.max_pixels)


def open_views(inputs: Sequence[str | os.PathLike] | str | os.PathLike, scratch: Path, stride: int = 1,
               max_frames: int | None = None, max_pixels: int | None = None) -> ViewSource:
    """The views that ``inputs`` name (as :func:`mum.io.load_views` selects them), decoded lazily; a video's
    frames are written to ``scratch`` (an existing folder the caller removes)."""
    import cv2

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    video = _single_video(inputs)
    if video is None:
        paths = select_image_paths(inputs, stride, max_frames)
        return FileViews(paths, view_names(paths), max_pixels)
    names, paths = [], []
    for name, frame in iter_video_frames(video, stride, max_frames, max_pixels=max_pixels):
        path = Path(scratch) / name
        ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        try:  # encoded in memory, written by Python: a full disk is one error line (libpng printed its own too)
            if not ok:
                raise OSError("the frame could not be encoded")
            path.write_bytes(png.tobytes())
        except OSError as exc:
            raise UserError(f"{scratch}: cannot write the decoded video frames ({exc.strerror or exc}; disk "
                            f"full?)") from None
        names.append(name)
        paths.append(path)
    return FileViews(paths, names, max_pixels, photos=False)
