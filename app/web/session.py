"""One user's reconstruction in the web app, and everything derived from it without running the model again:
the filtered point cloud, the 3D view (GLB), downloads, depth/confidence images and the camera table; and the
:class:`ResultStore` that keeps the server's temporary disk bounded (work folders, uploads).

Files are written with the project's export code (:mod:`app.exports.project_formats`), the same as ``mum-reconstruct``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.exports import project_formats as export
from app.engine.options import CloudOptions
from app.engine.point_budget import bounded_point_cloud
from app.engine.reconstruction import PointCloud, Reconstruction
from mum.errors import UserError
from mum.files import atomic_path

log = logging.getLogger("mum.web")

VIEWER_MAX_POINTS = 400_000  # what a browser's WebGL view handles smoothly
GALLERY_MAX_VIEWS = 24

CAMERA_TABLE_HEADERS = [
    "view", "name", "source", "intrinsics", "width", "height", "fx", "fy", "cx", "cy",
    "center x", "center y", "center z", "qw", "qx", "qy", "qz",
]

RESULT_GONE = "this result was removed (it expired, its session closed, or the server needed the disk space): " \
    "run the reconstruction again"


class ResultGone(UserError):
    """The session's result was removed from the server's disk (expired, evicted, or its session closed)."""

    def __init__(self) -> None:
        super().__init__(RESULT_GONE)


@dataclass
class RenderOptions:
    """What the user sees: confidence filter, frames, cameras, background masking, point source."""

    conf_percentile: float = 0.0
    frames: list[int] | None = None  # None = all views
    show_cameras: bool = True
    mask_background: bool = False
    source: str = "depth"
    max_points: int = VIEWER_MAX_POINTS

    @property
    def cloud(self) -> CloudOptions:
        """The cloud's part (the engine's options object of :func:`~app.engine.point_budget.bounded_point_cloud`)."""
        return CloudOptions(self.max_points, self.conf_percentile, self.mask_background, self.source, self.frames)


@dataclass
class Rendered:
    glb: Path
    ply: Path
    cameras_json: Path
    transforms_json: Path | None
    colmap_zip: Path | None
    points: int

    @property
    def downloads(self) -> list[str]:
        files = [self.ply, self.glb, self.cameras_json, self.transforms_json, self.colmap_zip]
        return [str(f) for f in files if f is not None]


@dataclass
class WebScene:
    """The cached result of one session plus its working folder (one sub-folder per render). ``fast``: the
    network-only preview; ``warnings``: the run's warning lines (SfM failed and the cameras are the network's);
    ``random_weights``: the model was a preset without trained weights."""

    recon: Reconstruction
    workdir: Path
    model: str = ""
    renders: int = field(default=0)
    fast: bool = False
    warnings: list[str] = field(default_factory=list)
    random_weights: bool = False  # a preset without trained weights: the status says so
    closed: bool = False

    @classmethod
    def create(cls, recon: Reconstruction, root: Path | None = None, model: str = "") -> WebScene:
        root = Path(root or tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        return cls(recon=recon, workdir=Path(tempfile.mkdtemp(prefix="mum-web-", dir=root)), model=model)

    def cloud(self, options: RenderOptions) -> PointCloud:
        """The cloud ``options`` asks for, as the command line makes it (a long input's a block of views at a
        time: its maps stay on disk)."""
        return bounded_point_cloud(self.recon, options.cloud)

    def render(self, options: RenderOptions, full_exports: bool = True) -> Rendered:
        """Write GLB, PLY and cameras.json (and with ``full_exports`` transforms.json and a COLMAP zip) for
        ``options`` into a fresh folder; the previous render's folder is removed. A closed scene (its folder
        removed) raises :class:`ResultGone`."""
        if self.closed:
            raise ResultGone()
        cloud = self.cloud(options)
        self.renders += 1
        out = self.workdir / f"render_{self.renders:04d}_{uuid.uuid4().hex[:6]}"
        out.mkdir(parents=True)
        for old in self.workdir.glob("render_*"):
            if old != out:
                shutil.rmtree(old, ignore_errors=True)
        glb = export.write_glb(out / "scene.glb", self.recon, cloud, show_cameras=options.show_cameras)
        ply = export.write_ply(out / "scene.ply", cloud)
        cams = export.write_cameras_json(out / "cameras.json", self.recon)
        transforms = colmap_zip = None
        if full_exports:
            transforms, colmap_zip = write_folder_exports(out, self.recon, cloud)
        return Rendered(glb, ply, cams, transforms, colmap_zip, len(cloud))

    def gallery(self, max_views: int = GALLERY_MAX_VIEWS) -> list[tuple[str, str]]:
        """:func:`gallery_items` written as PNG files into the work folder (once per scene): the page's gallery
        gets paths that are served from there, instead of arrays that Gradio would copy into its cache."""
        from PIL import Image

        if self.closed:
            raise ResultGone()
        folder = self.workdir / "gallery"
        folder.mkdir(exist_ok=True)
        items = []
        for i, (image, label) in enumerate(gallery_items(self.recon, max_views)):
            path = folder / f"{i:03d}.png"
            if not path.exists():
                Image.fromarray(np.ascontiguousarray(image)).save(path, compress_level=1)
            items.append((str(path), label))
        return items

    def close(self) -> None:
        """Remove the work folder; the scene can no longer render (:class:`ResultGone`)."""
        self.closed = True
        shutil.rmtree(self.workdir, ignore_errors=True)


def write_folder_exports(out: Path, recon: Reconstruction, cloud: PointCloud) -> tuple[Path | None, Path | None]:
    """The CLI's folder exports (``transforms.json``, COLMAP ``sparse/0``); the COLMAP model is zipped."""
    transforms = colmap_zip = None
    folder = out / "exports"
    for name, write in export.extra_folder_exports():
        write(folder, recon, cloud)
        if name == "transforms.json":
            transforms = Path(shutil.copy(folder / name, out / "transforms.json"))
        elif name.startswith("sparse"):
            colmap_zip = zip_folder(folder / "sparse", out / "colmap_sparse.zip", arc_root="sparse")
    shutil.rmtree(folder, ignore_errors=True)
    return transforms, colmap_zip


def zip_folder(folder: Path, dest: Path, arc_root: str) -> Path:
    # the fastest deflate level: the text files of a large point cloud take seconds at the default level
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, Path(arc_root) / f.relative_to(folder))
    return dest


def parse_frames(selected: Sequence[int] | None, num_views: int) -> list[int] | None:
    """Frame filter from the UI's selected view indices; nothing to filter (all selected) → ``None``."""
    if selected is None:
        return None
    picked = sorted({int(i) for i in selected if 0 <= int(i) < num_views})
    return None if len(picked) == num_views else picked


def frame_labels(names: Sequence[str]) -> list[str]:
    return [f"{i}: {name}" for i, name in enumerate(names)]


def camera_table(recon: Reconstruction) -> list[list]:
    """One row per view: where its pose came from ("given", "sfm" or "network") and its intrinsics ("given",
    "exif", "sfm" or "network"), image size, intrinsics (original pixels), camera centre in the world and the
    camera-from-world rotation as a quaternion (w, x, y, z)."""
    from scipy.spatial.transform import Rotation

    centers = recon.camera_centers()
    quats = Rotation.from_matrix(recon.cam_from_world[:, :3, :3]).as_quat()  # x, y, z, w
    sources, intrinsics = recon.pose_origins(), recon.intrinsics_origins()
    rows = []
    for i, name in enumerate(recon.names):
        K = recon.intrinsics[i]
        w, h = recon.image_sizes[i]
        x, y, z, qw = quats[i]
        rows.append(
            [i, name, sources[i], intrinsics[i], int(w), int(h)]
            + [round(float(v), 2) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2])]
            + [round(float(v), 4) for v in (*centers[i], qw, x, y, z)]
        )
    return rows


def gallery_items(recon: Reconstruction, max_views: int = GALLERY_MAX_VIEWS) -> list[tuple[np.ndarray, str]]:
    """Per view (at most ``max_views``): the image, its depth and its confidence, colour-mapped, on the grid of
    the dense maps (the network's, or the finer one the default path fits)."""
    from app.exports.plots import confidence_image, depth_image

    items: list[tuple[np.ndarray, str]] = []
    for i in range(min(recon.num_views, max_views)):
        name = recon.names[i]
        items.append((recon.colors[i], f"{i}: {name}"))
        items.append((depth_image(recon.depth[i]), f"{i}: depth"))
        items.append((confidence_image(recon.depth_conf[i]), f"{i}: confidence"))
    return items


# ------------------------------------------------------------------------------------------ disk budget
def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def folder_size(folder: str | os.PathLike) -> int:
    """Bytes in the regular files under ``folder`` (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def file_payload_paths(data: Any) -> Iterator[str]:
    """Every ``{"path": ...}`` file payload in a request's data (nested lists and dicts)."""
    if isinstance(data, dict):
        if isinstance(data.get("path"), str):
            yield data["path"]
        for value in data.values():
            if isinstance(value, (dict, list, tuple)):
                yield from file_payload_paths(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from file_payload_paths(value)
    elif hasattr(data, "path") and isinstance(getattr(data, "path", None), str):  # a FileData model
        yield data.path


class DiskFull(UserError):
    """The temporary disk budget is taken by requests in progress: nothing old is left to evict."""


UPLOAD_STEP = 8 << 20  # an upload of unknown length is promised disk this much at a time


class UploadTicket:
    """The disk an upload in progress was promised (:meth:`ResultStore.admit_upload`)."""

    def __init__(self, store: "ResultStore") -> None:
        self.store = store
        self.reserved = 0
        self.received = 0

    def grow(self, count: int, total: bool = False) -> None:
        """``count`` more bytes arrived (or, with ``total``, the body's whole declared size): promise what goes
        beyond the promise so far, or raise :class:`DiskFull`."""
        self.received = count if total else self.received + count
        if self.received > self.reserved:
            more = self.received - self.reserved if total else max(self.received - self.reserved, UPLOAD_STEP)
            with self.store._lock:
                self.store._reserve(more)
            self.reserved += more

    def end(self, stored: bool) -> None:
        self.store._upload_ended(self, stored)


@dataclass(eq=False)
class StoredResult:
    """What the store keeps for one session (its scene and the uploads it was made from, so that pressing
    *Reconstruct* again works) or for one API call (its scene until the client has downloaded the files)."""

    key: str
    kind: str  # "session", "api" or "retired" (a session's previous result a render was using: expires as "api")
    scene: WebScene | None = None  # a session's (an API result keeps its folder only, not the arrays in memory)
    workdir: Path | None = None
    uploads: set[str] = field(default_factory=set)  # real paths
    pending: set[str] = field(default_factory=set)  # api: result files (real paths) not yet downloaded
    last_used: float = field(default_factory=time.time)
    in_use: int = 0


class ResultStore:
    """Keeps the web server's temporary disk bounded: every work folder (one per result, under this server's
    own folder in ``work_root``) and every upload belongs to a request in progress, a session's result or an
    API call's result, and is deleted when that ends:

    - an API call's uploads when the call returns (success or error), its result folder once the client has
      downloaded its files (:meth:`served`) or after ``api_ttl_s``;
    - a session's result and uploads when the session runs again, closes, falls out of the ``max_sessions``
      most recently used, or was not used for ``session_ttl_s``;
    - uploads no request claimed (never submitted, refused by a full queue) after ``upload_ttl_s``;
    - and whenever the files take more than ``budget_bytes``, the oldest results and uploads first
      (:meth:`make_room`); what requests in progress hold is never evicted, and a new request that does not fit
      beside it is refused with :class:`DiskFull`.

    Only files the server made are deleted: its own work folders, and files in Gradio's folder that Gradio
    recorded for this server (with ``own_gradio_dir``, the folder is this server's alone: every file there of the
    shape Gradio writes, ``<sha256>/<name>`` and ``tmp…``, which includes uploads cut off midway); never an
    example scene's files. Uploads are named by their content in Gradio's folder, so one file can be two
    clients' uploads: it stays while an upload of it has not been claimed by a request (:meth:`uploaded`) or
    a queued or running request refers to it."""

    def __init__(
        self,
        work_root: str | os.PathLike,
        budget_bytes: int,
        max_sessions: int = 64,
        *,
        session_ttl_s: float = 6 * 3600,
        api_ttl_s: float = 600,
        upload_ttl_s: float = 3600,
        grace_s: float = 30,
        own_gradio_dir: bool = False,
    ) -> None:
        self.work_root = Path(work_root)
        self.budget_bytes = int(budget_bytes)
        self.max_sessions = max_sessions
        self.session_ttl_s, self.api_ttl_s, self.upload_ttl_s, self.grace_s = (
            session_ttl_s, api_ttl_s, upload_ttl_s, grace_s,
        )
        self.own_gradio_dir = own_gradio_dir
        self._lock = threading.RLock()
        self._entries: dict[str, StoredResult] = {}
        self._by_scene: dict[int, str] = {}
        self._claims: Counter[str] = Counter()
        self._pending: dict[str, int] = {}  # uploads (real paths) not yet claimed by a request, and how many
        self._pending_lock = threading.Lock()  # short: taken on the server's event loop (:meth:`uploaded`)
        self._blocks: Any = None
        self._gradio_dir: str | None = None
        self._built_with: set[str] = set()
        self._root: Path | None = None
        self.deleted_bytes = 0  # what the store has removed so far (for the log and the tests)
        self.stopping = threading.Event()  # the server is stopping: running requests end at their next stage
        self._idle = threading.Condition(self._lock)
        self._active = 0  # requests running (between request() entry and exit)
        self._reserved = 0  # bytes promised to uploads in progress (admit_upload)
        self._uploading = 0  # uploads in progress

    # ----------------------------------------------------------------------------------- set-up
    def attach(self, blocks: Any) -> None:
        """The Gradio app whose uploads and cache this store looks after. The work folders go inside Gradio's
        folder (a ``work_root`` outside it moves to ``<Gradio folder>/mum-web``): Gradio serves the files there
        as they are, where it would otherwise copy each one into its cache under a name shared by equal files."""
        with self._lock:
            self._blocks = blocks
            self._gradio_dir = _real(blocks.GRADIO_CACHE)
            self._built_with = self._tracked_files()  # cached while the app was built: the example scenes
            if not _inside(_real(self.work_root), self._gradio_dir):
                log.info("work folders in %s/mum-web instead of %s", self._gradio_dir, self.work_root)
                self.work_root = Path(self._gradio_dir) / "mum-web"
                self._root = None

    @property
    def root(self) -> Path:
        """This server's own folder in ``work_root`` (made on first use): every work folder goes in there."""
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self.work_root.mkdir(parents=True, exist_ok=True)
                self._root = Path(tempfile.mkdtemp(prefix="server-", dir=self.work_root))
            return self._root

    # ------------------------------------------------------------------------------ references
    def _event_refs(self) -> Counter[str]:
        """Uploads referred to by requests waiting in Gradio's queue or running (best effort: Gradio internals)."""
        refs: Counter[str] = Counter()
        events = getattr(getattr(self._blocks, "_queue", None), "event_ids_to_events", None) or {}
        try:
            for event in list(events.values()):
                body = getattr(event, "data", None)
                refs.update({_real(p) for p in file_payload_paths(getattr(body, "data", None))})
        except Exception:  # noqa: BLE001 - a changed Gradio: fall back to claims and entries
            log.debug("cannot read Gradio's queue", exc_info=True)
        return refs

    def _keep_in_cache(self) -> set[str]:
        """Files kept for the app's lifetime: those Gradio cached while the app was built (the example scenes'
        images) and those it marks to keep."""
        keep = set(self._built_with)
        for block in list(getattr(self._blocks, "blocks", {}).values()):
            keep.update(_real(p) for p in getattr(block, "keep_in_cache", ()))
        return keep

    def _held(self) -> set[str]:
        held = set(p for p, n in self._claims.items() if n > 0)
        for entry in self._entries.values():
            held |= entry.uploads
        return held

    def _tracked_files(self) -> set[str]:
        """Files Gradio recorded for this server: uploads and the copies its components made."""
        files: set[str] = set()
        for tracked in list(getattr(self._blocks, "temp_file_sets", ())):
            files.update(_real(p) for p in list(tracked))
        return files

    def _gradio_shaped(self, path: str) -> bool:
        """``path`` (real) has the shape of a file Gradio writes in its folder: ``<folder>/<sha256>/<name>`` (an
        upload, a cached copy) or ``<folder>/tmp…`` (a temporary, e.g. an upload cut off midway)."""
        if self._gradio_dir is None or not _inside(path, self._gradio_dir) or path == self._gradio_dir:
            return False
        parts = os.path.relpath(path, self._gradio_dir).split(os.sep)
        if len(parts) == 1:
            return parts[0].startswith("tmp")
        return len(parts) == 2 and len(parts[0]) == 64 and all(c in "0123456789abcdef" for c in parts[0])

    def _gradio_files(self) -> set[str]:
        """The files in Gradio's folder that belong to this server: those Gradio recorded for it (uploads, the
        copies it made) or, with ``own_gradio_dir``, every file of Gradio's shape there."""
        if self._gradio_dir is None:
            return set()
        if not self.own_gradio_dir:
            return {p for p in self._tracked_files() if self._gradio_shaped(p)}
        files: set[str] = set()
        try:
            with os.scandir(self._gradio_dir) as top:
                for entry in top:
                    path = _real(entry.path)
                    if entry.is_file(follow_symlinks=False) and self._gradio_shaped(path):
                        files.add(path)
                    elif entry.is_dir(follow_symlinks=False) and self._gradio_shaped(os.path.join(path, "x")):
                        with os.scandir(entry.path) as inner:
                            files.update(_real(f.path) for f in inner if f.is_file(follow_symlinks=False))
        except FileNotFoundError:  # nothing uploaded yet, or a folder removed meanwhile
            pass
        return files

    # --------------------------------------------------------------------------------- deletion
    def _forget(self, paths: Iterable[str]) -> None:
        """Drop deleted files from Gradio's records (its sets would otherwise grow for the server's lifetime)."""
        gone = set(paths)
        for tracked in list(getattr(self._blocks, "temp_file_sets", ())):
            for p in list(tracked):
                if p in gone or _real(p) in gone:
                    tracked.discard(p)

    def _delete_files(self, paths: Iterable[str]) -> int:
        freed, deleted = 0, []
        for p in paths:
            try:
                size = os.lstat(p).st_size
                os.unlink(p)
            except FileNotFoundError:
                deleted.append(p)
                with self._pending_lock:
                    self._pending.pop(p, None)
                continue
            except OSError as exc:
                log.warning("cannot remove %s: %s", p, exc)
                continue
            freed += size
            deleted.append(p)
            with self._pending_lock:
                self._pending.pop(p, None)
            parent = os.path.dirname(p)
            if self._gradio_dir is not None and parent != self._gradio_dir:
                try:
                    os.rmdir(parent)  # Gradio's per-upload folder, when empty
                except OSError:
                    pass
        self._forget(deleted)
        self.deleted_bytes += freed
        return freed

    def _delete_entry(self, entry: StoredResult) -> int:
        """Remove ``entry`` (lock held by the caller): its work folder and the uploads nobody else holds."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        freed = 0
        workdir = entry.scene.workdir if entry.scene is not None else entry.workdir
        if workdir is not None and workdir.is_dir():
            freed += folder_size(workdir)
            self._forget(_real(p) for p in workdir.rglob("*"))
        if entry.scene is not None:
            self._by_scene.pop(id(entry.scene), None)
            entry.scene.close()
        elif workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        self.deleted_bytes += freed
        freed += self._delete_uploads(entry.uploads)
        return freed

    def _delete_uploads(self, paths: Iterable[str], own_event: bool = False) -> int:
        """Delete the uploads in ``paths`` that this server may delete and nobody holds or is about to use: no
        running request's claim, no kept result, no request waiting in the queue (``own_event``: one of those is
        the caller's own), no upload of the same file that no request has claimed yet, not an example's file."""
        paths = set(paths)
        if not paths or self._gradio_dir is None:
            return 0
        held, keep, refs = self._held(), self._keep_in_cache(), self._event_refs()
        ours = self._tracked_files() if not self.own_gradio_dir else None
        doomed = []
        for p in paths:
            if p in held or p in keep or not self._gradio_shaped(p) or (ours is not None and p not in ours):
                continue
            if refs[p] - (1 if own_event else 0) > 0:
                continue
            with self._pending_lock:
                if self._pending.get(p, 0) > 0:
                    continue  # uploaded again: another client is about to submit it
            doomed.append(p)
        return self._delete_files(doomed)

    # --------------------------------------------------------------------------------- requests
    def uploaded(self, paths: Iterable[str]) -> None:
        """Gradio stored uploads at ``paths`` (its upload route answered): each is about to be used by a request.
        Gradio names an upload by its content, so two clients sending the same image share one file: until
        every upload of it has been claimed by a request, no request's end deletes it."""
        with self._pending_lock:
            for p in paths:
                real = _real(p)
                self._pending[real] = self._pending.get(real, 0) + 1

    @contextmanager
    def request(self, paths: Iterable[str | os.PathLike]) -> Iterator[set[str]]:
        """Hold a request's uploads while it runs; afterwards delete those no result keeps (an API call's,
        a refused submission's). Yields the claimed real paths."""
        claimed = {_real(p) for p in paths}
        with self._pending_lock:
            for p in claimed:
                if self._pending.get(p, 0) > 1:
                    self._pending[p] -= 1
                else:
                    self._pending.pop(p, None)
        with self._lock:
            self._claims.update(claimed)
            self._active += 1
        try:
            yield claimed
        finally:
            with self._lock:
                self._claims.subtract(claimed)
                self._claims += Counter()  # drop the zeros
                self._delete_uploads(claimed, own_event=True)
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the requests in progress to end; whether none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    # --------------------------------------------------------------------------------- uploads
    def admit_upload(self, declared: int | None) -> "UploadTicket":
        """An upload of ``declared`` bytes (its Content-Length; ``None``: unknown, counted as it arrives) may
        start only if it fits in the disk budget beside what is kept and what uploads in progress were promised
        (old results and loose uploads are evicted first); otherwise :class:`DiskFull` at once, before a byte of
        it is stored. The ticket's :meth:`UploadTicket.grow` holds a body to what fits as it streams."""
        with self._lock:
            ticket = UploadTicket(self)
            if declared is not None:
                ticket.grow(declared, total=True)
            self._uploading += 1
            return ticket

    def _reserve(self, more: int) -> None:
        """Promise ``more`` bytes to an upload (lock held by the caller), evicting old results if needed."""
        used = self.usage()
        if used + self._reserved + more > self.budget_bytes:
            used = self.make_room(need=self._reserved + more, refuse=False)
        if used + self._reserved + more > self.budget_bytes:
            raise DiskFull(f"the server's temporary disk is full ({used / 2**20:.0f} MB in use, "
                           f"{self._reserved / 2**20:.0f} MB promised to uploads in progress, budget "
                           f"{self.budget_bytes / 2**20:.0f} MB): try again in a minute, or with fewer or smaller files")
        self._reserved += more

    def _upload_ended(self, ticket: "UploadTicket", stored: bool) -> None:
        """An upload ended (``stored``: Gradio kept its files): its promise is released; an upload cut off midway
        leaves Gradio's temporary file (``tmp…``), removed here once no other upload is in progress (a stored
        upload's temporaries are moved into place before its request ends: Gradio's background task)."""
        with self._lock:
            self._reserved -= ticket.reserved
            self._uploading -= 1
            if stored or self._uploading or not self.own_gradio_dir or self._gradio_dir is None:
                return
            partial = [p for _t, p, _ in self._loose_uploads()
                       if os.path.basename(p).startswith("tmp") and os.path.dirname(p) == self._gradio_dir]
            if partial:
                log.info("removing %d upload(s) cut off midway", len(partial))
                self._delete_files(partial)

    def add_session(self, key: str, scene: WebScene | None, uploads: Iterable[str | os.PathLike]) -> None:
        """``scene`` becomes the session's result, kept with ``uploads``, and the session's previous result is
        removed (its uploads unless kept again). With no ``scene`` (a refused submission) the session keeps what
        it shows and adds ``uploads``, so that the user can correct the selection without uploading again."""
        uploads = {_real(p) for p in uploads}
        with self._lock:
            old = self._entries.get(key)
            if scene is None and old is not None:
                old.uploads |= uploads
                old.last_used = time.time()
                return
            entry = StoredResult(key, "session", scene=scene, uploads=uploads)
            self._entries[key] = entry
            if scene is not None:
                self._by_scene[id(scene)] = key
            if old is not None and old.in_use:  # a render of it is running (a filter moved as this run ended):
                old.key, old.kind = f"retired-{uuid.uuid4().hex}", "retired"  # kept until its files are fetched
                self._entries[old.key] = old
                if old.scene is not None:
                    self._by_scene[id(old.scene)] = old.key
            elif old is not None:
                self._delete_entry(old)
            sessions = sorted((e for e in self._entries.values() if e.kind == "session"), key=lambda e: e.last_used)
            for victim in sessions[: max(len(sessions) - self.max_sessions, 0)]:
                if victim is not entry and victim.in_use == 0:
                    log.info("session result evicted (more than %d sessions)", self.max_sessions)
                    self._delete_entry(victim)

    def key_of(self, scene: WebScene | None) -> str | None:
        """The key ``scene`` is kept under (``None``: not kept)."""
        with self._lock:
            return self._by_scene.get(id(scene)) if scene is not None else None

    def add_api(self, scene: WebScene, files: Iterable[str | os.PathLike]) -> None:
        """An API call's result folder, kept until every file in ``files`` has been downloaded (or
        ``api_ttl_s``); the scene itself (its arrays) is not kept."""
        with self._lock:
            key = f"api-{uuid.uuid4().hex}"
            self._entries[key] = StoredResult(key, "api", workdir=scene.workdir, pending={_real(f) for f in files})

    def served(self, path: str) -> None:
        """A client downloaded ``path`` in full: an API result whose files have all been downloaded goes."""
        real = _real(path)
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.kind == "api" and real in entry.pending:
                    entry.pending.discard(real)
                    if not entry.pending and entry.in_use == 0:
                        self._delete_entry(entry)
                    return

    def close_session(self, key: str | None) -> None:
        """The browser session ``key`` closed: its result and uploads go."""
        with self._lock:
            entry = self._entries.get(key) if key else None
            if entry is not None and entry.kind == "session" and entry.in_use == 0:
                self._delete_entry(entry)

    def discard(self, scene: WebScene | None) -> None:
        """Remove ``scene`` and its entry (a result that was never delivered)."""
        if scene is None:
            return
        with self._lock:
            key = self._by_scene.get(id(scene))
            if key is not None and key in self._entries:
                self._delete_entry(self._entries[key])
            else:
                scene.close()

    @contextmanager
    def using(self, scene: WebScene) -> Iterator[None]:
        """Render from ``scene``: it is not evicted meanwhile; a removed one raises :class:`ResultGone`."""
        with self._lock:
            entry = self._entries.get(self._by_scene.get(id(scene), ""))
            if scene.closed:
                raise ResultGone()
            if entry is not None:
                entry.in_use += 1
                entry.last_used = time.time()
        try:
            yield
        finally:
            if entry is not None:
                with self._lock:
                    entry.in_use -= 1

    # ------------------------------------------------------------------------------------ budget
    def usage(self) -> int:
        """Bytes this server keeps on disk: its work folder and its files in Gradio's folder."""
        total = folder_size(self.root)
        for p in self._gradio_files():
            try:
                total += os.lstat(p).st_size
            except OSError:
                pass
        return total

    def _loose_uploads(self) -> list[tuple[float, str, int]]:
        """``(mtime, path, size)`` of uploads no request, result or queued event holds (oldest first)."""
        if self._gradio_dir is None:
            return []
        held, keep, refs = self._held(), self._keep_in_cache(), self._event_refs()
        out = []
        for p in self._gradio_files():
            if p in held or p in keep or refs[p] > 0:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out.append((max(st.st_mtime, st.st_ctime), p, st.st_size))
        return sorted(out)

    def make_room(self, need: int = 0, refuse: bool = True) -> int:
        """Evict the oldest results and loose uploads until the files take at most ``budget_bytes - need``;
        returns the bytes in use. When only what requests in progress hold is left and it is still too much,
        raise :class:`DiskFull` (``refuse``)."""
        with self._lock:
            used = self.usage()
            if used + need <= self.budget_bytes:
                return used
            now = time.time()
            candidates: list[tuple[float, str, Any]] = [
                (e.last_used, "entry", e) for e in self._entries.values() if e.in_use == 0
            ]
            candidates += [(t, "file", (p, size)) for t, p, size in self._loose_uploads() if now - t > self.grace_s]
            for _t, kind, item in sorted(candidates, key=lambda c: c[0]):
                if used + need <= self.budget_bytes:
                    break
                if kind == "entry":
                    if item.key in self._entries:
                        log.info("%s result evicted to keep the disk budget", item.kind)
                        used -= self._delete_entry(item)
                else:
                    used -= self._delete_files([item[0]])
            used = self.usage()
            if used + need > self.budget_bytes and refuse:
                raise DiskFull(
                    f"the server's temporary disk is full ({used / 2**20:.0f} MB in use by requests in progress, "
                    f"budget {self.budget_bytes / 2**20:.0f} MB): try again in a minute, or with fewer or smaller files"
                )
            return used

    def tick(self) -> int:
        """Expire what has outlived its time, remove folders left by servers that stopped without cleaning up,
        keep the budget; returns the bytes in use."""
        now = time.time()
        with self._lock:
            for entry in list(self._entries.values()):
                ttl = self.api_ttl_s if entry.kind in ("api", "retired") else self.session_ttl_s
                if entry.in_use == 0 and now - entry.last_used > ttl:
                    log.info("%s result expired", entry.kind)
                    self._delete_entry(entry)
            self._delete_files([p for t, p, _ in self._loose_uploads() if now - t > self.upload_ttl_s])
            with self._pending_lock:
                for p in [p for p in self._pending if not os.path.exists(p)]:
                    del self._pending[p]  # uploads gone some other way (Gradio's own sweep)
            root = self.root
            os.utime(root)  # alive: other servers sharing the work root leave this folder alone
            self._sweep_stale(now)
        return self.make_room(refuse=False)

    def _sweep_stale(self, now: float) -> None:
        """Folders in ``work_root`` that no live server touched for ``session_ttl_s`` (a server killed before
        it could clean up): this server's own folder is touched on every tick."""
        own = _real(self.root)
        for d in self.work_root.glob("server-*"):
            try:
                stale = now - d.stat().st_mtime > self.session_ttl_s
                if stale and _real(d) != own and d.is_dir() and not d.is_symlink():
                    self.deleted_bytes += folder_size(d)
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass

    def close_all(self) -> None:
        """The server stops: every result and upload it holds goes, and its own folder."""
        with self._lock:
            for entry in list(self._entries.values()):
                self._delete_entry(entry)
            self._delete_files([p for _t, p, _size in self._loose_uploads()])
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            kinds = Counter(e.kind for e in self._entries.values())
            with self._pending_lock:
                pending = len(self._pending)
            return {"sessions": kinds["session"], "api": kinds["api"], "claims": len(self._claims),
                    "pending_uploads": pending, "bytes": self.usage(), "deleted_bytes": self.deleted_bytes}

