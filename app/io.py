"""The project's one image loader: find, read, validate and resize user images for the network.

Reading handles EXIF orientation, grayscale, 16-bit, palette and RGBA (alpha composited on white) images and
refuses unreadable, empty, truncated or absurdly large files with a one-line :class:`~mum.errors.UserError`.
Preprocessing resizes every view to one common network size (multiples of the patch size) and records, per
view, the affine map between original and network pixels so that intrinsics can be reported in pixels of
the original image.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from app.native_stderr import native_stderr_to
from mum.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
MAX_PIXELS = 40_000 * 40_000  # refuse decompression bombs beyond this

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def list_image_paths(inputs: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Expand folders (their images, sorted by name), globs and explicit files into a list of image paths.

    Raises :class:`UserError` for a path that does not exist, a folder or glob with no images, or a file
    that is not an image."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: list[Path] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and is_image_path(q))
            if not found:
                raise UserError(f"{p}: folder contains no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif p.is_file():
            if not is_image_path(p):
                raise UserError(f"{p}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
            paths.append(p)
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(text) if is_image_path(q) and Path(q).is_file())
            if not found:
                raise UserError(f"{text}: pattern matches no images")
            paths.extend(found)
        else:
            raise UserError(f"{text}: no such file or folder")
    if not paths:
        raise UserError("no input images given")
    first: dict[Path, Path] = {}  # the same file twice (a folder and a file in it, overlapping globs): once
    for p in paths:
        first.setdefault(p.resolve(), p)
    return list(first.values())


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL image → ``uint8`` RGB ``[H, W, 3]``: 16-bit scaled to 8-bit, alpha composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr / max(arr.max(), 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``[H, W, 3]`` in its display orientation (EXIF applied)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: image file is empty")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = to_rgb8(img)
    except Image.DecompressionBombError:
        raise UserError(f"{path}: image is too large (more than {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not a readable image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: cannot decode image, truncated or corrupt ({str(exc).splitlines()[0][:120]})") from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise UserError(f"{path}: image is too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


@dataclass(frozen=True)
class ViewTransform:
    """How a view was cropped and scaled: the crop ``[x0, x0 + W/sx) × [y0, y0 + H/sy)`` of the original
    (continuous coordinates, pixel ``i`` covering ``[i, i+1)``) was resized to the network size.

    Intrinsics follow the project convention (as VGGT/OpenCV): pixel centres at integer coordinates, so a
    point at pixel-centre coordinate ``u`` maps to ``u_net = (u + ½ − x0)·sx − ½``.
    ``original_size`` and ``network_size`` are ``(width, height)``."""

    original_size: tuple[int, int]
    network_size: tuple[int, int]
    x0: float
    y0: float
    sx: float
    sy: float

    def _to_network(self) -> np.ndarray:
        return np.array(
            [[self.sx, 0, (0.5 - self.x0) * self.sx - 0.5], [0, self.sy, (0.5 - self.y0) * self.sy - 0.5], [0, 0, 1]],
            dtype=np.float64,
        )

    def intrinsics_to_original(self, K: np.ndarray) -> np.ndarray:
        """``[..., 3, 3]`` intrinsics in network pixels → original pixels."""
        return np.linalg.inv(self._to_network()) @ np.asarray(K, dtype=np.float64)

    def intrinsics_to_network(self, K: np.ndarray) -> np.ndarray:
        """``[..., 3, 3]`` intrinsics in original pixels → network pixels."""
        return self._to_network() @ np.asarray(K, dtype=np.float64)

    def scaled(self, factor: int) -> "ViewTransform":
        """The same crop resampled to ``factor``× the network size (dense maps at a finer grid)."""
        W, H = self.network_size
        return ViewTransform(self.original_size, (W * factor, H * factor), self.x0, self.y0,
                             self.sx * factor, self.sy * factor)

    def points_to_original(self, uv: np.ndarray) -> np.ndarray:
        """``[..., 2]`` pixel-centre coordinates in network pixels → original pixels."""
        uv = np.asarray(uv, dtype=np.float64)
        return np.stack([(uv[..., 0] + 0.5) / self.sx + self.x0 - 0.5, (uv[..., 1] + 0.5) / self.sy + self.y0 - 0.5], -1)

    def points_to_network(self, uv: np.ndarray) -> np.ndarray:
        """``[..., 2]`` pixel-centre coordinates in original pixels → network pixels."""
        uv = np.asarray(uv, dtype=np.float64)
        return np.stack([(uv[..., 0] + 0.5 - self.x0) * self.sx - 0.5, (uv[..., 1] + 0.5 - self.y0) * self.sy - 0.5], -1)


def warp_view(image: np.ndarray, tf: ViewTransform) -> np.ndarray:
    """Resample ``image`` (``[h, w, C]``, the original) to ``tf.network_size`` by ``tf``'s exact crop and scale:
    area-averaging when shrinking (the crop's corner is then whole pixels), bilinear when enlarging."""
    import cv2

    W, H = tf.network_size
    if tf.sx < 1 and float(tf.x0).is_integer() and float(tf.y0).is_integer():
        xi, yi = int(tf.x0), int(tf.y0)
        crop = image[yi : yi + int(round(H / tf.sy)), xi : xi + int(round(W / tf.sx))]
        return cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA)
    M = np.array([[tf.sx, 0, (0.5 - tf.x0) * tf.sx - 0.5], [0, tf.sy, (0.5 - tf.y0) * tf.sy - 0.5]], dtype=np.float64)
    return cv2.warpAffine(image, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def network_size(width: int, height: int, long_side: int, patch_size: int) -> tuple[int, int]:
    """``(W, H)`` with the aspect of ``width × height``, longer side ≈ ``long_side``, both multiples of the patch."""
    scale = long_side / max(width, height)
    W = max(patch_size, int(round(width * scale / patch_size)) * patch_size)
    H = max(patch_size, int(round(height * scale / patch_size)) * patch_size)
    return W, H


def preprocess(images: Sequence[np.ndarray], long_side: int = 518, patch_size: int = 14) -> tuple[torch.Tensor, list[ViewTransform]]:
    """Resize views to one network size → ``[S, 3, H, W]`` float32 in [0, 1] and a transform per view.

    The network size follows the median aspect ratio of the views; a view of another aspect is centre-cropped
    to that aspect before resizing (no distortion, no padding)."""
    if not images:
        raise UserError("no images to preprocess")
    aspects = sorted(im.shape[1] / im.shape[0] for im in images)
    aspect = aspects[len(aspects) // 2]
    W, H = network_size(int(round(1000 * aspect)), 1000, long_side, patch_size)
    target_aspect = W / H
    out = np.empty((len(images), H, W, 3), dtype=np.float32)
    transforms = []
    for i, im in enumerate(images):
        h, w = im.shape[:2]
        if w / h > target_aspect:  # too wide: crop width
            cw, ch = h * target_aspect, float(h)
        else:
            cw, ch = float(w), w / target_aspect
        x0, y0 = (w - cw) / 2, (h - ch) / 2
        if W / cw < 1:  # shrinking: INTER_AREA needs a whole-pixel crop, so round the crop (inside the image)
            x0, y0 = float(round(x0)), float(round(y0))
            cw, ch = float(min(round(cw), w - x0)), float(min(round(ch), h - y0))
        tf = ViewTransform((w, h), (W, H), x0, y0, W / cw, H / ch)
        out[i] = warp_view(im, tf).astype(np.float32) / 255.0
        transforms.append(tf)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), transforms


def load_images(paths: Iterable[str | os.PathLike]) -> list[np.ndarray]:
    """Read every path with :func:`read_image` (one loader for the whole project)."""
    return [read_image(p) for p in paths]


def read_video_frames(
    path: str | os.PathLike, stride: int = 1, max_frames: int | None = None
) -> tuple[list[str], list[np.ndarray]]:
    """Frames of a video as ``uint8`` RGB arrays with names ``frame_000123.png`` (the frame index).

    ``stride`` keeps every n-th frame; ``max_frames`` then samples that many frames uniformly over the video."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such video file")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr lines would break one-line errors
    with native_stderr_to(os.devnull):  # nor OpenCV's AVI parser ("Unexpected element ...") on broken files
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"{path}: cannot open video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    indices = list(range(0, max(total, 0), max(stride, 1)))
    if max_frames is not None and len(indices) > max_frames:
        pick = np.linspace(0, len(indices) - 1, max_frames).round().astype(int)
        indices = [indices[i] for i in pick]
    wanted = set(indices)
    names, frames = [], []
    index = 0
    while wanted:
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            names.append(f"frame_{index:06d}.png")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            wanted.discard(index)
        index += 1
    cap.release()
    if not frames:
        raise UserError(f"{path}: video has no readable frames")
    return names, frames


def subsample(items: list, max_count: int | None) -> list:
    """At most ``max_count`` items, spread uniformly (first and last kept)."""
    if max_count is None or len(items) <= max_count:
        return items
    pick = np.linspace(0, len(items) - 1, max_count).round().astype(int)
    return [items[i] for i in pick]


def load_views(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike, stride: int = 1, max_frames: int | None = None
) -> tuple[list[str], list[np.ndarray]]:
    """Names and ``uint8`` RGB arrays of the views given as one video, or as image files/folders/globs."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if len(inputs) == 1 and is_video_path(inputs[0]) and not Path(inputs[0]).is_dir():
        video = str(inputs[0])
        if not Path(video).exists() and any(ch in video for ch in "*?["):  # a quoted glob of videos
            found = sorted(glob.glob(video))
            if len(found) != 1:
                raise UserError(f"{video}: pattern matches {len(found)} videos; give exactly one video (or images)")
            video = found[0]
        return read_video_frames(video, stride, max_frames)
    paths = subsample(list_image_paths(inputs)[:: max(stride, 1)], max_frames)
    return view_names(paths), load_images(paths)


def view_names(paths: Sequence[Path]) -> list[str]:
    """Distinct names of image files: their file names, or, when two share one (``a/x.png``, ``b/x.png``), their
    paths below the deepest folder they all share, e.g. ``a/x.png``."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([p.resolve().parent for p in paths]))
    return [p.resolve().relative_to(common).as_posix() for p in paths]
