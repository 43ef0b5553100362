"""COLMAP sparse models (text or binary, via ``pycolmap``).

COLMAP puts pixel centres at half-integers, the project at integers: principal points are shifted by 0.5
both ways. Distortion parameters of non-pinhole models are kept in ``Scene.distortion`` and ignored by the
pinhole intrinsics. Layout: ``SCENE/sparse/0/{cameras,images,points3D}.{bin,txt}`` and ``SCENE/images/``.
A binary model's declared counts are checked against its files' sizes before pycolmap reads it
(:func:`check_binary_model`), and every camera read is held to :func:`mum.data.readers.schema.check_camera`.
"""

from __future__ import annotations

import functools
import mmap
import os
import re
import struct
from pathlib import Path

import numpy as np

from mum.data.readers.common import attach_depth_masks, png_names, prepare_dir, warn_skip, write_views
from mum.data.readers.schema import check_camera
from mum.schema import shown
from mum.data.scene import Scene
from mum.errors import UserError
from mum.pycolmap_import import import_pycolmap

MODEL_FILES = ("cameras", "images", "points3D")
QUATERNION_NORM_TOLERANCE = 1e-3  # COLMAP writes unit quaternions; one typed with 3 decimals is within 1e-3
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
    pycolmap = import_pycolmap()

    model_dir = find_colmap_model(path)
    if model_dir is None:
        raise UserError(f"{path}: no COLMAP model (cameras/images/points3D .bin or .txt) here or in sparse/0")
    if images_dir is None:
        candidates = [model_dir.parent.parent / "images", model_dir.parent / "images", model_dir / "images"]
        images_dir = next((c for c in candidates if c.is_dir()), candidates[0])
    images_dir = Path(images_dir)
    if all((model_dir / f"{n}.bin").is_file() for n in MODEL_FILES):  # what pycolmap reads first
        check_binary_model(model_dir)
    else:
        check_text_images(model_dir / "images.txt")
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError for malformed files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise UserError(f"{model_dir}: cannot read COLMAP model ({first})") from None
    try:  # a text model's names reach Python as str: one that is not UTF-8 raises when it is read
        images = sorted(rec.images.values(), key=lambda im: im.name)
    except UnicodeDecodeError as exc:
        raise UserError(f"{model_dir}: an image name is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                        f"{exc.start})") from None
    names, paths, E, K, widths, heights, dist = [], [], [], [], [], [], []
    for image in images:
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
        cam_from_world = image.cam_from_world()
        norm = float(np.linalg.norm(cam_from_world.rotation.quat))
        if not abs(norm - 1) <= QUATERNION_NORM_TOLERANCE:  # pycolmap keeps it as written: (0, 0, 0, 0) reads as I
            raise UserError(f"{model_dir}: image {shown(image.name, 80)}: its rotation quaternion has norm {norm:.6g}, "
                            f"a rotation's has norm 1")
        pose = np.vstack([np.asarray(cam_from_world.matrix(), np.float64), [0, 0, 0, 1]])
        check_camera(f"{model_dir}: image {shown(image.name, 80)}", int(cam.width), int(cam.height), k, pose)
        names.append(image.name)
        paths.append(file)
        E.append(pose[:3])
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


class _Cursor:
    """Reads little-endian fields of a binary COLMAP file, refusing any read past its end (``ValueError``)."""

    def __init__(self, data) -> None:
        self.data, self.pos, self.size = data, 0, len(data)

    def skip(self, n: int, what: str) -> int:
        if n > self.size - self.pos:
            raise ValueError(f"truncated: {what} needs {n} bytes at offset {self.pos}, the file has {self.size}")
        start, self.pos = self.pos, self.pos + n
        return start

    def read(self, fmt: str, what: str):
        return struct.unpack_from(fmt, self.data, self.skip(struct.calcsize(fmt), what))[0]

    def count(self, fmt: str, least: int, what: str) -> int:
        """A declared number of records of at least ``least`` bytes each, refused unless that many fit."""
        n = self.read(fmt, f"the number of {what}")
        room = (self.size - self.pos) // least if least else n
        if n > room:
            raise ValueError(f"declares {n:,} {what} but has room for at most {room:,}")
        return n


@functools.lru_cache(maxsize=1)
def _camera_params() -> dict[int, int]:
    """COLMAP camera model id → its number of parameters (from pycolmap, so new models are known)."""
    pycolmap = import_pycolmap()
    out = {}
    for model in pycolmap.CameraModelId.__members__.values():
        if int(model) >= 0:
            out[int(model)] = len(pycolmap.Camera.create_from_model_id(1, model, 1.0, 1, 1).params)
    return out


def _walk_rigs(c: _Cursor) -> None:
    for _ in range(c.count("<Q", 8, "rigs")):
        c.skip(4, "a rig id")
        sensors = c.read("<I", "a rig's number of sensors")
        if sensors:
            c.skip(8, "a rig's reference sensor")
        if sensors > 1 and (sensors - 1) * 9 > c.size - c.pos:
            raise ValueError(f"declares {sensors:,} sensors in a rig but has room for fewer")
        for _ in range(max(sensors - 1, 0)):
            c.skip(8, "a sensor id")
            if c.read("<B", "a sensor's pose flag"):
                c.skip(56, "a sensor's pose")


def _walk_cameras(c: _Cursor) -> None:
    params = _camera_params()
    for _ in range(c.count("<Q", 24, "cameras")):
        c.skip(4, "a camera id")
        model = c.read("<i", "a camera model id")
        if model not in params:
            raise ValueError(f"unknown camera model id {model}")
        c.skip(16 + 8 * params[model], "a camera's size and parameters")


def _walk_frames(c: _Cursor) -> None:
    for _ in range(c.count("<Q", 68, "frames")):
        c.skip(64, "a frame's ids and pose")
        c.skip(16 * c.count("<I", 16, "data ids in a frame"), "a frame's data ids")


def _walk_images(c: _Cursor) -> None:
    for i in range(c.count("<Q", 73, "images")):
        c.skip(64, "an image's id, pose and camera id")
        end = c.data.find(b"\0", c.pos)
        if end < 0:
            raise ValueError("an image name lacks its terminating NUL byte (truncated)")
        _check_utf8(c.data[c.pos:end], f"image {i}'s name")
        c.pos = end + 1
        c.skip(24 * c.count("<Q", 24, "2D points of an image"), "an image's 2D points")


def _check_utf8(name: bytes, what: str) -> None:
    """Refuse a name that is not UTF-8 text (pycolmap hands names to Python as ``str``: it would raise
    ``UnicodeDecodeError`` when the name is read)."""
    try:
        bytes(name).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from None


def _walk_points(c: _Cursor) -> None:
    """Each point: 43 bytes (id, xyz, rgb, error), a track length, 8 bytes per track element (a tight loop:
    a model holds hundreds of thousands of points)."""
    count = c.count("<Q", 51, "3D points")
    data, pos, size, unpack = c.data, c.pos, c.size, _U64.unpack_from
    for i in range(count):
        if pos + 51 > size:
            raise ValueError(f"truncated in 3D point {i} of {count:,}")
        pos += 51 + 8 * unpack(data, pos + 43)[0]
        if pos > size:
            raise ValueError(f"3D point {i} declares a track longer than the file holds")
    c.pos = pos


_U64 = struct.Struct("<Q")


def check_binary_model(model_dir: str | os.PathLike) -> None:
    """Refuse a binary COLMAP model whose files declare more records than they hold, or end in the middle of
    one (:class:`UserError` naming the file), before pycolmap reads it: its reader trusts the counts (8 bytes
    claiming 2^40 points allocate until memory runs out) and reads a name up to a NUL byte that may never come
    (a loop at the end of the file). Walks every record's header without decoding values."""
    model_dir = Path(model_dir)
    for name, walk in (("rigs", _walk_rigs), ("cameras", _walk_cameras), ("frames", _walk_frames),
                       ("images", _walk_images), ("points3D", _walk_points)):
        path = model_dir / f"{name}.bin"
        if not path.is_file():
            continue  # rigs.bin and frames.bin are optional (models written before COLMAP 3.12)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size == 0:
                    raise ValueError("the file is empty")
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    walk(_Cursor(data))
        except ValueError as exc:
            raise UserError(f"{path}: not a valid COLMAP binary file ({exc})") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


_POINT3D_IDS = re.compile(r"(?:-?\d+ )*-?\d+")


def check_text_images(path: str | os.PathLike) -> None:
    """Refuse a text ``images.txt`` that pycolmap would misread without a word: as COLMAP reads it, each image
    line (comments and blank lines skipped before it) is followed by one line of its 2D points, ``X Y
    POINT3D_ID`` triples or nothing; a file that leaves those lines out has every second image read as the
    points of the one before (its camera lost). A line in that place that is not such triples is a
    :class:`UserError` naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    k = 0
    while k < len(lines):
        line = lines[k].strip()
        k += 1
        if not line or line.startswith("#"):
            continue
        if k == len(lines):
            return  # the last image's points line may be missing at the end of the file
        tokens = lines[k].split()
        k += 1
        if len(tokens) % 3 or (tokens and not _POINT3D_IDS.fullmatch(" ".join(tokens[2::3]))):
            raise UserError(f"{path}: line {k} is not the 2D points (X Y POINT3D_ID triples) of the image on line "
                            f"{k - 1}: COLMAP's images.txt gives each image two lines, the second its points (may be "
                            f"empty)")


def write_colmap(scene: Scene, folder: str | os.PathLike, overwrite: bool = False, text: bool = True, binary: bool = True) -> Path:
    """``folder/images/*.png`` and a COLMAP model in ``folder/sparse/0`` (binary and/or text): one PINHOLE
    camera per view and the scene's sparse points (without tracks) if it has any. Returns ``folder``."""
    pycolmap = import_pycolmap()

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
