"""What the photos and the user already know about the cameras: a cameras file (``--cameras``) and EXIF focal
lengths, read, validated and matched to the input views.

A cameras file is one of

* the project's own ``cameras.json`` (``{"images": [{"name", "width", "height", "K", "cam_from_world"?}]}``,
  K in pixels of the original image with pixel centres at integers, OpenCV camera-from-world 4×4), also the
  ``demo/*/cameras_reference.json`` layout (:func:`mum.data.readers.common.load_cameras_file`);
* a COLMAP model folder (``sparse/0`` or a scene folder holding it; text or binary): registered images, their
  poses and the pinhole part of their cameras (distortion is not modelled and is dropped, with a progress note);
* a nerfstudio / instant-ngp ``transforms.json``.

Entries are matched to the inputs by view name (the file name, or the path below the inputs' common folder
when two inputs share a file name), else by the trailing components of their path (a ``transforms.json`` frame
``images/a/x.png`` is the view ``a/x.png``; an entry ``x.png`` the one view of that file name) when that is
unambiguous. Each format's one reader checks every value's type and range before use
(:mod:`mum.data.readers.schema`); an entry that names no input, has a size other than its image's (display
orientation), a wrong type, a non-finite or out-of-range value, a bad K or a rotation that is not orthonormal is
a :class:`~mum.errors.UserError` naming the file and the entry. A COLMAP model or a
``transforms.json`` made at another resolution of the same images (same aspect, e.g. COLMAP's ``images_2``)
has its K rescaled to the image; the project's own ``cameras.json`` must give the images' exact size.

EXIF: the focal length of a photo, as COLMAP reads it (``colmap/sensor/bitmap.cc``), but the physical sensor
first: ``FocalLength`` (mm) × ``FocalPlaneXResolution`` (pixels per ``FocalPlaneResolutionUnit``), rescaled
from ``PixelXDimension`` to the stored width when the two differ; else ``FocalLengthIn35mmFilm / 35 ×
max(width, height)`` (COLMAP's rule). A focal length is the same in pixels whatever the EXIF orientation; the
principal point is the centre of the image in its display orientation (the loader's).

Precedence per view: intrinsics given > EXIF > (SfM, refining an EXIF prior) > network; poses given (with
``--fix-poses``) > SfM > network.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from mum.schema import shown
from mum.errors import UserError
from mum.geometry import centred_intrinsics
from mum.io import ViewTransform

EXIF_FOCAL_RANGE = (0.1, 50.0)  # plausible focal lengths, in units of the image's longer side
_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_X_RES = 0xA20E
_FOCAL_PLANE_UNIT = 0xA210
_PIXEL_X_DIMENSION = 0xA002
_UNIT_MM = {1: None, 2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}  # FocalPlaneResolutionUnit → millimetres (1: none)


@dataclass
class CameraEntry:
    """One camera of a cameras file: ``K`` 3×3 (pixels of a ``width × height`` image, centres at integers) and
    optionally ``cam_from_world`` 4×4; ``where`` names the entry in messages."""

    name: str
    width: int
    height: int
    K: np.ndarray
    cam_from_world: Optional[np.ndarray]
    where: str
    rescalable: bool = False  # COLMAP / transforms.json: another resolution of the same image is accepted
    distorted: bool = False  # the file models lens distortion, which the pinhole K here drops


@dataclass
class KnownCameras:
    """What is known per view (``S`` views): ``K`` ``[S, 3, 3]`` original pixels (NaN where nothing is known),
    ``intrinsics_source`` ``"given"``, ``"exif"`` or ``""``; ``cam_from_world`` ``[S, 4, 4]`` (NaN where no pose
    is given); ``fix_poses``: keep the given poses (world frame and scale are the file's)."""

    K: np.ndarray
    intrinsics_source: list[str]
    cam_from_world: np.ndarray
    fix_poses: bool = False

    @property
    def num_views(self) -> int:
        return len(self.intrinsics_source)

    @property
    def known_intrinsics(self) -> np.ndarray:
        return np.array([s in ("given", "exif") for s in self.intrinsics_source], bool)

    @property
    def posed(self) -> np.ndarray:
        """``[S]`` views whose pose is kept (given, with ``fix_poses``)."""
        if not self.fix_poses:
            return np.zeros(self.num_views, bool)
        return np.isfinite(self.cam_from_world).all(axis=(1, 2))

    def subset(self, views: Sequence[int]) -> "KnownCameras":
        """What is known about ``views`` (indices into this one's views), in their order."""
        views = list(views)
        return KnownCameras(self.K[views].copy(), [self.intrinsics_source[v] for v in views],
                            self.cam_from_world[views].copy(), self.fix_poses)

    @classmethod
    def empty(cls, S: int) -> "KnownCameras":
        return cls(np.full((S, 3, 3), np.nan), [""] * S, np.full((S, 4, 4), np.nan))


# --------------------------------------------------------------------------------------------- files
def read_cameras_file(path: str | os.PathLike, sizes: Optional[dict[str, tuple[int, int]]] = None
                      ) -> list[CameraEntry]:
    """The cameras of a ``cameras.json``, COLMAP model folder or ``transforms.json`` (see the module
    docstring). Each format's one reader checks every entry (:mod:`mum.data.readers.schema`: types, finite
    values in range, an orthonormal rotation) and names the file and entry in its one-line error. ``sizes``:
    the input images' ``(w, h)`` by file name, for a ``transforms.json`` frame without ``w``/``h`` whose image
    is not beside the file (the web app's uploads, a file kept apart from the images)."""
    from mum.schema import read_json

    path = Path(path)
    if path.is_dir():
        from mum.data.readers.colmap import find_colmap_model

        if find_colmap_model(path) is not None:
            entries = _read_colmap(path)
        elif (path / "transforms.json").is_file():
            entries = _read_transforms(path / "transforms.json", sizes)
        else:
            raise UserError(f"{path}: no cameras file here (a COLMAP model: cameras/images/points3D .bin or .txt, "
                            f"or transforms.json)")
    elif not path.is_file():
        raise UserError(f"{path}: no such cameras file")
    else:
        data = read_json(path)
        if isinstance(data, dict) and "frames" in data:
            entries = _read_transforms(path, sizes)
        elif isinstance(data, dict) and ("images" in data or "cameras" in data):
            entries = _read_cameras_json(path)
        else:
            raise UserError(f"{path}: not a cameras file (expected cameras.json with 'images', a COLMAP model "
                            f"folder, or transforms.json with 'frames')")
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.name in seen:
            raise UserError(f"{entry.where}: the name is given twice (also {seen[entry.name]})")
        seen[entry.name] = entry.where
    if not entries:
        raise UserError(f"{path}: names no camera")
    return entries


def _read_cameras_json(path: Path) -> list[CameraEntry]:
    """The project's ``cameras.json`` or the ``demo/*/cameras_reference.json`` layout (one reader for both)."""
    from mum.data.readers.common import load_cameras_file

    return [CameraEntry(name, cam["width"], cam["height"], cam["K"], cam["cam_from_world"], cam["where"])
            for name, cam in load_cameras_file(path, require_poses=False).items()]


def _read_colmap(path: Path) -> list[CameraEntry]:
    from mum.data.readers.colmap import find_colmap_model, read_colmap

    scene = read_colmap(path, require_images=False)
    model = find_colmap_model(path)
    entries = []
    for i, name in enumerate(scene.names):
        pose = np.vstack([scene.extrinsics[i], [0, 0, 0, 1]])
        params = (scene.distortion[i].get("params", []) if scene.distortion else [])
        distorted = bool(scene.distortion and scene.distortion[i]) and any(
            abs(float(x)) > 0 for x in params[_PINHOLE_PARAMS.get(scene.distortion[i].get("model"), 4):])
        entries.append(CameraEntry(name, int(scene.widths[i]), int(scene.heights[i]), scene.intrinsics[i], pose,
                                   f"{model}: image {shown(name, 80)}", rescalable=True, distorted=distorted))
    return entries


# COLMAP camera models: how many leading parameters are focal length(s) and principal point
_PINHOLE_PARAMS = {"SIMPLE_RADIAL": 3, "RADIAL": 3, "SIMPLE_RADIAL_FISHEYE": 3, "RADIAL_FISHEYE": 3}


def _read_transforms(path: Path, sizes: Optional[dict[str, tuple[int, int]]] = None) -> list[CameraEntry]:
    """A ``transforms.json``: each frame named by its ``file_path`` as written (``images/a/x.png``; matched to
    the inputs by its trailing path, :func:`match_entries`), so that two inputs of one file name stay apart."""
    from mum.data.readers.nerfstudio import read_transforms_json

    scene = read_transforms_json(path, require_images=False, sizes=sizes)
    entries = []
    for i, file in enumerate(scene.image_paths):
        try:
            name = Path(file).relative_to(path.parent).as_posix()
        except ValueError:  # an absolute file_path elsewhere
            name = Path(file).as_posix()
        entries.append(CameraEntry(name, int(scene.widths[i]), int(scene.heights[i]), scene.intrinsics[i],
                                   np.vstack([scene.extrinsics[i], [0, 0, 0, 1]]), f"{path}: frame {shown(name, 80)}",
                                   rescalable=True, distorted=bool(scene.distortion and scene.distortion[i])))
    return entries


# ---------------------------------------------------------------------------------------------- EXIF
def exif_focal(path: str | os.PathLike) -> Optional[float]:
    """The focal length in pixels that ``path``'s EXIF gives (see the module docstring), or ``None``."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = im.size  # as stored (before the EXIF orientation)
                exif = im.getexif()
                tags = dict(exif.get_ifd(_EXIF_IFD))
    except Exception:  # no EXIF, a broken one: nothing is known (the image loader reports unreadable files)
        return None
    long_side = max(width, height)
    focal = _focal_plane(tags, width)
    if focal is None:
        f35 = _number(tags.get(_FOCAL_35MM))
        focal = f35 / 35.0 * long_side if f35 and f35 > 0 else None
    if focal is None or not EXIF_FOCAL_RANGE[0] * long_side <= focal <= EXIF_FOCAL_RANGE[1] * long_side:
        return None
    return float(focal)


def _number(value) -> Optional[float]:
    try:
        x = float(value[0] / value[1]) if isinstance(value, tuple) and len(value) == 2 else float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) else None


def _focal_plane(tags: dict, stored_width: int) -> Optional[float]:
    focal_mm, resolution = _number(tags.get(_FOCAL_LENGTH)), _number(tags.get(_FOCAL_PLANE_X_RES))
    unit = _UNIT_MM.get(int(_number(tags.get(_FOCAL_PLANE_UNIT)) or 2))
    if not (focal_mm and focal_mm > 0 and resolution and resolution > 0 and unit):
        return None
    focal = focal_mm * resolution / unit  # pixels of a PixelXDimension-wide image
    pixel_x = _number(tags.get(_PIXEL_X_DIMENSION))
    if pixel_x and pixel_x > 0 and pixel_x != stored_width:
        focal *= stored_width / pixel_x
    return focal


# -------------------------------------------------------------------------------------------- matching
def match_entries(entries: Sequence[CameraEntry], names: Sequence[str], sizes: Sequence[tuple[int, int]],
                  all_names: Optional[Sequence[str]] = None) -> dict[int, CameraEntry]:
    """``view index → entry`` for the views (``names``, ``sizes`` ``(w, h)`` in display orientation) that the
    file names; an entry naming none of ``all_names`` (default ``names``: the inputs before ``--stride`` /
    ``--max-frames``, whose dropped views are not an error) is refused, as is a size other than the image's."""
    index = {n: i for i, n in enumerate(names)}
    known = set(all_names if all_names is not None else names) | set(names)
    by_file: dict[str, list[str]] = {}
    for n in known:
        by_file.setdefault(Path(n).name, []).append(n)
    out: dict[int, CameraEntry] = {}
    for entry in entries:
        found = [entry.name] if entry.name in known else _trailing_matches(entry.name, by_file)
        if len(found) > 1:
            shown = ", ".join(sorted(found)[:4]) + (" …" if len(found) > 4 else "")
            raise UserError(f"{entry.where}: {len(found)} input images end with this name ({shown}); name it by "
                            f"more of its path")
        if not found:
            shown = ", ".join(sorted(known)[:4]) + (" …" if len(known) > 4 else "")
            raise UserError(f"{entry.where}: no input image has this name (inputs: {shown})")
        name = found[0]
        if name not in index:
            continue  # an input left out by --stride / --max-frames
        i = index[name]
        if i in out:
            raise UserError(f"{entry.where}: names the same input as {out[i].where}")
        out[i] = _fit_size(entry, *sizes[i])
    return out


def _trailing_matches(entry_name: str, by_file: dict[str, list[str]]) -> list[str]:
    """The view names whose path components end the entry's (``images/a/x.png`` → ``a/x.png``) or are ended
    by them (``x.png`` → ``a/x.png``), the longest such matches only: none, the one, or several when it is
    ambiguous (``x.png`` with inputs ``a/x.png`` and ``b/x.png``)."""
    parts = Path(entry_name).parts
    if not parts:
        return []
    best: list[str] = []
    best_length = 0
    for candidate in by_file.get(parts[-1], []):
        theirs = Path(candidate).parts
        length = min(len(parts), len(theirs))
        if parts[-length:] != theirs[-length:]:
            continue
        if length > best_length:
            best, best_length = [candidate], length
        elif length == best_length:
            best.append(candidate)
    return best


def _fit_size(entry: CameraEntry, width: int, height: int) -> CameraEntry:
    """``entry`` for an image of ``width × height``: the same size, or (COLMAP, transforms.json) the same
    aspect at another resolution, K rescaled (``u' = (u + ½)·s − ½``)."""
    if (entry.width, entry.height) == (width, height):
        return entry
    sx, sy = width / entry.width, height / entry.height
    if entry.rescalable and abs(sx - sy) * max(entry.width, entry.height) < 1.0:
        resize = ViewTransform((entry.width, entry.height), (width, height), 0.0, 0.0, sx, sy)  # the whole image
        return CameraEntry(entry.name, width, height, resize.intrinsics_to_network(entry.K), entry.cam_from_world,
                           entry.where, distorted=entry.distorted)
    rotated = " (rotated: check the EXIF orientation)" if (entry.width, entry.height) == (height, width) else ""
    raise UserError(f"{entry.where}: gives the size {entry.width}x{entry.height} but the image is "
                    f"{width}x{height}{rotated}")


def known_cameras(
    names: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    paths: Optional[Sequence[Optional[str | os.PathLike]]] = None,
    cameras_file: Optional[str | os.PathLike] = None,
    fix_poses: bool = False,
    all_names: Optional[Sequence[str]] = None,
    say: Optional[Callable[[str], None]] = None,
) -> KnownCameras:
    """What is known about each view: the cameras file's K (and pose), else the EXIF focal length of the image
    file ``paths[i]`` (``None``: a video frame, no EXIF). ``fix_poses`` needs a pose for at least one view."""
    say = say or (lambda _m: None)
    S = len(names)
    known = KnownCameras.empty(S)
    known.fix_poses = fix_poses
    matched: dict[int, CameraEntry] = {}
    if cameras_file is not None:
        by_file: dict[str, list[tuple[int, int]]] = {}
        for name, size in zip(names, sizes):
            by_file.setdefault(Path(name).name, []).append(tuple(size))
        entries = read_cameras_file(cameras_file, {f: s[0] for f, s in by_file.items() if len(s) == 1})
        matched = match_entries(entries, names, sizes, all_names)
        for i, entry in matched.items():
            known.K[i] = entry.K
            known.intrinsics_source[i] = "given"
            if entry.cam_from_world is not None:
                known.cam_from_world[i] = entry.cam_from_world
        distorted = sum(entry.distorted for entry in matched.values())
        if distorted:
            say(f"cameras: {cameras_file} models lens distortion for {distorted} view(s); it is ignored (the "
                f"pipeline is pinhole: use undistorted images for exact results)")
        posed = int(np.isfinite(known.cam_from_world).all(axis=(1, 2)).sum())
        say(f"cameras: {cameras_file} gives the intrinsics of {len(matched)}/{S} views"
            + (f" and the poses of {posed}" if posed else "")
            + (" (kept: --fix-poses)" if fix_poses and posed else " (poses unused without --fix-poses)" if posed else ""))
    if fix_poses and not known.posed.any():
        raise UserError(f"--fix-poses: {cameras_file or 'no --cameras file'} gives no pose for any input view"
                        if cameras_file is not None else "--fix-poses needs --cameras FILE with poses")
    if paths is not None:
        exif = 0
        for i, path in enumerate(paths):
            if i in matched or path is None:
                continue
            focal = exif_focal(path)
            if focal is not None:
                known.K[i] = centred_intrinsics(focal, *sizes[i])
                known.intrinsics_source[i] = "exif"
                exif += 1
        if exif:
            say(f"cameras: EXIF focal lengths of {exif}/{S} views (a prior SfM refines)")
    return known
