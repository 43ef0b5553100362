"""The project's one image loader: find, read, validate and resize user images for the network.

Reading handles EXIF orientation, grayscale, 16-bit, palette and RGBA (alpha composited on white) images and
refuses unreadable, empty, truncated or too large files with a one-line :class:`~mum.errors.UserError`. The size
limit (:func:`pixel_limit`: 100 Mpx unless ``MUM_MAX_PIXELS`` says otherwise) is checked from the image header
before anything is decoded, so a decompression bomb (a small file of a huge image) costs nothing; Pillow's own
guard (``Image.MAX_IMAGE_PIXELS``) is kept at the same value and its warnings, like any other warning a
decoder raises (corrupt EXIF), never reach the terminal.
Preprocessing resizes every view to one common network size (multiples of the patch size) and records, per
view, the affine map between original and network pixels so that intrinsics can be reported in pixels of
the original image.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mum.native_stderr import native_stderr_to
from mum.errors import UserError, is_unprintable, one_line
from mum.files import resolve_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
DEFAULT_MAX_PIXELS = 100_000_000  # 100 Mpx (12000 x 8000 fits); MUM_MAX_PIXELS or --max-pixels raise it
MAX_PIXELS_ENV = "MUM_MAX_PIXELS"
MAX_PIXELS_CEILING = 10**12  # what a --max-pixels / MUM_MAX_PIXELS value may say at most

log = logging.getLogger(__name__)


def pixel_limit(override: int | str | None = None) -> int:
    """The most pixels (width x height) an image or video frame may have: ``override`` when given (a number, or
    its text as on a command line), else the ``MUM_MAX_PIXELS`` environment variable, else
    :data:`DEFAULT_MAX_PIXELS`. A bad value is a ``UserError``."""
    if override is not None:
        return parse_pixel_count(override, "--max-pixels")
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    return parse_pixel_count(text, MAX_PIXELS_ENV) if text else DEFAULT_MAX_PIXELS


def parse_pixel_count(value: int | str, source: str = "--max-pixels") -> int:
    """A pixel limit given as a whole number, written out (``300000000``, ``300_000_000``) or in scientific
    notation (``3e8``), between 1 and :data:`MAX_PIXELS_CEILING`; one-line :class:`UserError` otherwise
    (``abc``, ``1.5``, ``inf``, ``1e400``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        limit = value
    else:
        text = str(value).strip().replace("_", "")
        try:
            limit = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number != int(number):
                raise UserError(f"{source} {one_line(str(value))!r}: not a whole number of pixels") from None
            limit = int(number)
    if not 1 <= limit <= MAX_PIXELS_CEILING:
        raise UserError(f"{source} must be between 1 and {MAX_PIXELS_CEILING:,} pixels")
    return limit


def _sync_pillow(limit: int | None = None) -> None:
    """Pillow's own decompression-bomb guard (its warning above ``Image.MAX_IMAGE_PIXELS``, its error above
    twice that) at the process-wide limit (``MUM_MAX_PIXELS`` or the default), so that other Pillow users in
    this process (the web app's upload handling, the data tools) are held to it too; raised, never lowered,
    for a call allowed more (``--max-pixels``). The project's own check, from the header, is :func:`read_image`'s."""
    try:
        base = pixel_limit()
    except UserError:  # a bad MUM_MAX_PIXELS is reported by pixel_limit() where an image is read
        base = DEFAULT_MAX_PIXELS
    Image.MAX_IMAGE_PIXELS = max(base, limit or 0)


_sync_pillow()
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
        try:
            if p.is_dir():
                found = sorted(q for q in p.iterdir() if is_image_path(q) and q.is_file())
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
            elif os.path.islink(text):
                raise UserError(f"{text}: symbolic link to nothing (or a link loop)")
            else:
                raise UserError(f"{text}: no such file or folder")
        except OSError as exc:  # an unreadable folder (permissions), a file system error
            raise UserError(f"{text}: cannot read ({exc.strerror or exc})") from None
    if not paths:
        raise UserError("no input images given")
    first: dict[Path, Path] = {}  # the same file twice (a folder and a file in it, overlapping globs): once
    for p in paths:
        first.setdefault(resolve_path(p), p)
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


_EXIF_ORIENTATION = 0x0112  # 5–8: the image is stored a quarter turn from how it is shown


def image_size(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image file as the loader returns it (after its EXIF orientation, which
    swaps the two for a quarter turn), from the header alone (nothing is decoded); ``UserError`` when the file
    cannot be opened or is not an image. Pillow's own guard is raised to ``max_pixels`` (default: the
    process-wide :func:`pixel_limit`) for the call, so that an image within it is measured, not refused; the
    caller compares the size with its limit."""
    path = Path(path)
    limit = pixel_limit(max_pixels)
    _sync_pillow(limit)
    try:
        with warnings.catch_warnings(), open(path, "rb") as fh:
            warnings.simplefilter("ignore")
            with Image.open(fh) as img:
                w, h = img.size
                if w * h > limit:  # the caller refuses it
                    return w, h
                # Pillow's PNG getexif() decodes the whole image to look for an eXIf chunk after the pixels
                exif = _png_exif(fh) if img.format == "PNG" else img.getexif()
                return (h, w) if exif.get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)
    except Image.DecompressionBombError as exc:  # more than twice Pillow's limit
        raise _bomb(path, exc, limit) from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not a readable image") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except _DECODER_ERRORS as exc:  # a broken EXIF block: the loader refuses the file too
        raise _undecodable(path, exc) from None


# what Pillow's decoders raise on broken files, besides OSError
_DECODER_ERRORS = (SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, struct_error,
                   ZeroDivisionError, OverflowError)


def _undecodable(path: Path, exc: Exception) -> UserError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
    return UserError(f"{path}: cannot decode image, truncated or corrupt ({first})")


def _png_exif(fh) -> Image.Exif:
    """The EXIF of a PNG file as the loader sees it once the image is decoded (the last ``eXIf`` chunk, before or
    after the pixel data), found by walking the chunk headers (``length``, ``type``, data, CRC) without
    decompressing anything; empty when there is none."""
    exif = Image.Exif()
    fh.seek(8)  # past the signature
    while len(head := fh.read(8)) == 8:
        length, kind = int.from_bytes(head[:4], "big"), head[4:]
        if kind == b"IEND":
            break
        if kind == b"eXIf":
            data = fh.read(length)
            if len(data) < length:  # truncated: the decoder will say so
                break
            exif = Image.Exif()
            exif.load(b"Exif\x00\x00" + data)
            fh.seek(4, os.SEEK_CUR)
        else:
            fh.seek(length + 4, os.SEEK_CUR)
    return exif


def _bomb(path: Path, exc: Exception, limit: int) -> UserError:
    """Pillow's ``DecompressionBombError`` ("Image size (N pixels) exceeds limit ...") as our one line."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    count = f"{int(found.group(1)):,} pixels" if found else f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
    return _too_large(path, count, limit)


class ImageTooLarge(UserError):
    """An image (or video frame) above the pixel limit, found from its header."""


def _too_large(path: Path, size: tuple[int, int] | str, limit: int) -> UserError:
    """The one line for an image over the pixel limit; ``size`` ``(w, h)`` or a description of its pixels."""
    what = size if isinstance(size, str) else f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels"
    return ImageTooLarge(f"{path}: image is too large ({what}, the limit is {limit:,}; set {MAX_PIXELS_ENV} or "
                     f"--max-pixels to allow more)")


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``[H, W, 3]`` in its display orientation (EXIF applied).

    An image of more than :func:`pixel_limit` pixels (``max_pixels`` or the ``MUM_MAX_PIXELS`` default) is
    refused from its header, before decoding. Decoder warnings (corrupt EXIF, ...) are logged, not printed."""
    path = Path(path)
    limit = pixel_limit(max_pixels)
    _sync_pillow(limit)
    try:
        if not path.is_file():
            raise UserError(f"{path}: no such image file")
        if path.stat().st_size == 0:
            raise UserError(f"{path}: image file is empty")
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        with fh, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(fh) as img:
                if img.size[0] * img.size[1] > limit:  # from the header: nothing decoded yet
                    raise _too_large(path, img.size, limit)
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = to_rgb8(img)
        for w in caught:
            log.info("%s: %s", path, w.message)
    except Image.DecompressionBombError as exc:  # Pillow's guard, at twice the limit, fired on the header
        raise _bomb(path, exc, limit) from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not a readable image") from None
    except (OSError, *_DECODER_ERRORS) as exc:
        raise _undecodable(path, exc) from None
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise UserError(f"{path}: image is too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


@dataclass(frozen=True)
class ViewTransform:
    """How a view was cropped and scaled: the crop ``[x0, x0 + W/sx) × [y0, y0 + H/sy)`` of the original
    (continuous coordinates, pixel ``i`` covering ``[i, i+1)``) was resampled to the ``grid_size`` grid: the
    network input, or the finer grid of the dense maps (:meth:`scaled`); "network pixels" below are this
    grid's pixels.

    Intrinsics follow the project convention (as VGGT/OpenCV): pixel centres at integer coordinates, so a
    point at pixel-centre coordinate ``u`` maps to ``u_net = (u + ½ − x0)·sx − ½``.
    ``original_size`` and ``grid_size`` are ``(width, height)``."""

    original_size: tuple[int, int]
    grid_size: tuple[int, int]
    x0: float
    y0: float
    sx: float
    sy: float

    @classmethod
    def crop(cls, original_size: tuple[int, int], grid_size: tuple[int, int], x0: float, y0: float,
             width: float, height: float) -> "ViewTransform":
        """The crop ``[x0, x0 + width) × [y0, y0 + height)`` of an ``original_size`` image resized to
        ``grid_size`` (both ``(width, height)``)."""
        W, H = grid_size
        return cls((int(original_size[0]), int(original_size[1])), (int(W), int(H)), float(x0), float(y0),
                   W / width, H / height)

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
        W, H = self.grid_size
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
    """Resample ``image`` (``[h, w, C]``, the original) to ``tf.grid_size`` by ``tf``'s exact crop and scale:
    area-averaging when shrinking (the crop's corner is then whole pixels), bilinear when enlarging."""
    import cv2

    W, H = tf.grid_size
    if tf.sx < 1 and float(tf.x0).is_integer() and float(tf.y0).is_integer():
        xi, yi = int(tf.x0), int(tf.y0)
        crop = image[yi : yi + int(round(H / tf.sy)), xi : xi + int(round(W / tf.sx))]
        return cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA)
    M = np.array([[tf.sx, 0, (0.5 - tf.x0) * tf.sx - 0.5], [0, tf.sy, (0.5 - tf.y0) * tf.sy - 0.5]], dtype=np.float64)
    return cv2.warpAffine(image, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def network_size(width: int, height: int, long_side: int, patch_size: int) -> tuple[int, int]:
    """``(W, H)`` with the aspect of ``width × height``, longer side ≈ ``long_side``, both multiples of the patch
    (halves round up: Python's ``round`` would take 4.5 patches to 4 and crop a portrait photo by 11 %)."""
    scale = long_side / max(width, height)
    W = max(patch_size, math.floor(width * scale / patch_size + 0.5 + 1e-9) * patch_size)
    H = max(patch_size, math.floor(height * scale / patch_size + 0.5 + 1e-9) * patch_size)
    return W, H


def preprocess(images: Sequence[np.ndarray], long_side: int = 518, patch_size: int = 14,
               size: tuple[int, int] | None = None, aspect: float | None = None
               ) -> tuple[torch.Tensor, list[ViewTransform]]:
    """Resize views to one network size → ``[S, 3, H, W]`` float32 in [0, 1] and a transform per view.

    The network size is ``size`` (``(W, H)``) when given, else it follows the median aspect ratio of the views
    (or ``aspect``, width / height: the chunks of a long input share the aspect of all its views), longer side
    ≈ ``long_side``, multiples of ``patch_size``; a view of another aspect is centre-cropped to the network's
    aspect before resizing (no distortion, no padding)."""
    if not images:
        raise UserError("no images to preprocess")
    if size is None:
        if aspect is None:
            aspects = sorted(im.shape[1] / im.shape[0] for im in images)
            aspect = aspects[len(aspects) // 2]
        W, H = network_size(round(1_000_000 * aspect), 1_000_000, long_side, patch_size)
    else:
        W, H = size
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
        tf = ViewTransform.crop((w, h), (W, H), x0, y0, cw, ch)
        out[i] = warp_view(im, tf).astype(np.float32) / 255.0
        transforms.append(tf)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), transforms


def load_images(paths: Iterable[str | os.PathLike], max_pixels: int | None = None) -> list[np.ndarray]:
    """Read every path with :func:`read_image` (one loader for the whole project). Every header is checked
    first, so a file that is too large or not an image is refused before any other is decoded."""
    paths = list(paths)
    limit = pixel_limit(max_pixels)
    _sync_pillow(limit)
    for p in paths:
        check_image_header(p, limit)
    return [read_image(p, max_pixels=limit) for p in paths]


def check_image_header(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of the image file ``path`` (display orientation) from its header, refused with one
    :class:`UserError` line when it holds more than ``max_pixels`` (default :func:`pixel_limit`) or is not a
    readable image; nothing above the limit is ever decoded."""
    limit = pixel_limit(max_pixels)
    try:
        size = image_size(path, limit)
    except ImageTooLarge:
        raise
    except UserError:
        read_image(path, max_pixels=limit)  # raises, saying precisely what is wrong with this file
        raise
    if size[0] * size[1] > limit:
        raise _too_large(Path(path), size, limit)
    return size


def read_video_frames(
    path: str | os.PathLike, stride: int = 1, max_frames: int | None = None, max_pixels: int | None = None
) -> tuple[list[str], list[np.ndarray]]:
    """Frames of a video as ``uint8`` RGB arrays with names ``frame_000123.png`` (the frame index).

    ``stride`` keeps every n-th frame; ``max_frames`` then samples that many frames uniformly over the video.
    A frame size above :func:`pixel_limit` is refused before any frame is decoded."""
    names, frames = [], []
    for name, frame in iter_video_frames(path, stride, max_frames, max_pixels):
        names.append(name)
        frames.append(frame)
    return names, frames


def iter_video_frames(
    path: str | os.PathLike, stride: int = 1, max_frames: int | None = None, max_pixels: int | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """:func:`read_video_frames` one frame at a time (a long video never has all its frames in memory).

    The frames are those that decode, whatever the container claims: a header's frame count or duration can
    be wrong (an AVI claiming 2^32 frames, a WebM/MKV without a Duration, whose count OpenCV reports as
    negative, a Duration saying 1 s for 100 frames). Without ``max_frames`` every ``stride``-th frame is read in
    one pass; with it the decodable frames are counted first (:func:`count_video_frames`: decoded, nothing
    converted or kept) and ``max_frames`` are picked uniformly among every ``stride``-th of them, so the work
    and memory are bounded by ``max_frames`` before anything is kept."""
    import cv2

    path = Path(path)
    stride = max(int(stride), 1)
    cap = _open_video(path, pixel_limit(max_pixels))
    try:
        wanted = None  # None: every stride-th frame
        if max_frames is not None:
            total = count_video_frames(path, max_pixels)
            kept = (total + stride - 1) // stride
            pick = range(kept) if kept <= max_frames else np.linspace(0, kept - 1, max_frames).round().astype(int)
            wanted = {int(k) * stride for k in pick}
        last = max(wanted) if wanted else -1
        index = count = 0
        while wanted is None or index <= last:
            if (index % stride == 0) if wanted is None else (index in wanted):
                ok, frame = cap.read()
                if not ok:
                    break
                count += 1
                yield f"frame_{index:06d}.png", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            elif not cap.grab():  # a frame not wanted: decoded, not converted
                break
            index += 1
    finally:
        cap.release()
    if not count:
        raise UserError(f"{path}: video has no readable frames")


def _open_video(path: Path, limit: int):
    """An opened ``cv2.VideoCapture`` of ``path`` whose frame size is within ``limit`` pixels (from the header,
    before any frame is decoded); :class:`UserError` otherwise."""
    import cv2

    try:
        if not path.is_file():
            raise UserError(f"{path}: no such video file")
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr lines would break one-line errors
    with native_stderr_to(os.devnull):  # nor OpenCV's AVI parser ("Unexpected element ...") on broken files
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"{path}: cannot open video")
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > limit:
        cap.release()
        raise UserError(f"{path}: video frames are too large ({width}x{height}, the limit is {limit:,} pixels; "
                        f"set {MAX_PIXELS_ENV} or --max-pixels to allow more)")
    return cap


def count_video_frames(path: str | os.PathLike, max_pixels: int | None = None) -> int:
    """How many frames of ``path`` decode, counted by decoding them in order (``grab``: nothing converted or
    kept) up to the first that does not: the container's frame count and duration are not trusted."""
    path = Path(path)
    cap = _open_video(path, pixel_limit(max_pixels))
    try:
        count = 0
        while cap.grab():
            count += 1
        return count
    finally:
        cap.release()


def subsample(items: list, max_count: int | None) -> list:
    """At most ``max_count`` items, spread uniformly (first and last kept)."""
    if max_count is None or len(items) <= max_count:
        return items
    pick = np.linspace(0, len(items) - 1, max_count).round().astype(int)
    return [items[i] for i in pick]


def input_files(inputs: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """The files that ``inputs`` name: the one video, or every image of the folders/files/globs (before
    ``--stride``/``--max-frames`` sampling)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    video = _single_video(inputs)
    return [Path(video)] if video is not None else list_image_paths(inputs)


def _single_video(inputs: Sequence[str | os.PathLike]) -> str | None:
    """The video file when ``inputs`` is one video (a path or a quoted glob matching one), else ``None``."""
    if len(inputs) != 1 or not is_video_path(inputs[0]):
        return None
    video = str(inputs[0])
    try:
        if Path(video).is_dir():
            return None
        exists = Path(video).exists()
    except OSError as exc:
        raise UserError(f"{video}: cannot read ({exc.strerror or exc})") from None
    if not exists and any(ch in video for ch in "*?["):  # a quoted glob of videos
        found = sorted(glob.glob(video))
        if len(found) != 1:
            raise UserError(f"{video}: pattern matches {len(found)} videos; give exactly one video (or images)")
        video = found[0]
    return video


def load_views(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike, stride: int = 1, max_frames: int | None = None,
    max_pixels: int | None = None,
) -> tuple[list[str], list[np.ndarray]]:
    """Names and ``uint8`` RGB arrays of the views given as one video, or as image files/folders/globs.

    Images and frames above :func:`pixel_limit` (``max_pixels`` or ``MUM_MAX_PIXELS``) are refused from their
    headers; file names a format cannot carry are refused (:func:`view_names`)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    video = _single_video(inputs)
    if video is not None:
        return read_video_frames(video, stride, max_frames, max_pixels=max_pixels)
    paths = select_image_paths(inputs, stride, max_frames)
    names = view_names(paths)
    return names, load_images(paths, max_pixels=max_pixels)


def select_image_paths(inputs: Sequence[str | os.PathLike] | str | os.PathLike, stride: int = 1,
                       max_frames: int | None = None) -> list[Path]:
    """The image files :func:`load_views` reads for ``inputs`` (images, not a video), in its order: every
    ``stride``-th, then at most ``max_frames`` spread uniformly."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return subsample(list_image_paths(inputs)[:: max(stride, 1)], max_frames)


def view_names(paths: Sequence[Path]) -> list[str]:
    """Distinct names of image files: their file names, or, when two share one (``a/x.png``, ``b/x.png``), their
    paths below the deepest folder they all share, e.g. ``a/x.png``.

    A name that the exports cannot carry is refused (:func:`check_view_name`): every export names the views by
    these names, and COLMAP's text model is one line per image."""
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        resolved = [resolve_path(p) for p in paths]
        common = Path(os.path.commonpath([r.parent for r in resolved]))
        names = [r.relative_to(common).as_posix() for r in resolved]
    for path, name in zip(paths, names):
        check_view_name(name, path)
    return names


def check_view_name(name: str, path: str | os.PathLike | None = None) -> None:
    """Refuse a view name with a control character (newline, tab, escape ...), a line or paragraph separator,
    or bytes that are not UTF-8: COLMAP's ``images.txt`` (one line per image, fields split at blanks),
    ``cameras.json`` and ``transforms.json`` could not carry it faithfully."""
    bad = [ch for ch in name if is_unprintable(ch)]
    if bad:
        shown = one_line(str(path if path is not None else name))
        raise UserError(f"{shown}: file name contains {one_line(bad[0])}, which the exports cannot hold "
                        f"(COLMAP's images.txt is one line per image); rename the file")
