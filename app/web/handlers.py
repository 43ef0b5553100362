"""What the web app's events do: check uploads, run the reconstruction (the pipeline's default path, network +
SfM + multi-view stereo, or the network-only fast preview), re-render from the cached result, and the
``/reconstruct`` API. Every user error surfaces as a one-line message in the page (``gr.Error``). Every request's
files (uploads, work folder) are handed to the :class:`~app.web.session.ResultStore`, which deletes them when
they are no longer needed and keeps the server's temporary disk under its budget."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from app.engine.runtime import is_out_of_memory
from mum.files import scratch_folder
from mum.io import is_image_path, is_video_path
from app.engine.reconstruction import default_conf_percentile
from app.web.model_cache import ModelCache
from app.web.session import (
    CAMERA_TABLE_HEADERS,
    DiskFull,
    RenderOptions,
    ResultStore,
    WebScene,
    camera_table,
    frame_labels,
    parse_frames,
)
from mum.errors import UserError

log = logging.getLogger("mum.web")

OOM_MESSAGE = "out of memory: use fewer views or a smaller resolution"
INTERNAL_MESSAGE = "the server failed on this request (an internal error, recorded in its log)"

# Progress fraction at which each pipeline stage starts, by the start of its progress line (app.engine.network,
# app.engine.sfm, app.engine.cameras, app.engine.dense_geometry). Roughly proportional to the time each stage takes
# on a CPU.
STAGE_FRACTIONS: tuple[tuple[str, float], ...] = (
    (r"reading uploads", 0.02),
    (r"loading model", 0.05),
    (r"preprocessed", 0.08),
    (r"running the model", 0.1),
    (r"sfm: SIFT features", 0.3),
    (r"sfm: matching", 0.4),
    (r"sfm: incremental mapping", 0.48),
    (r"sfm: views missing; mapping again from COLMAP", 0.51),
    (r"sfm: \d+ view\(s\) not registered: guided", 0.54),
    (r"sfm: views still missing", 0.6),
    (r"sfm: mapping refused", 0.6),
    (r"sfm: the lens distortion moves", 0.61),
    (r"sfm: another part of the scene", 0.62),
    (r"sfm: \d+ view\(s\) not registered, placed", 0.63),
    (r"sfm: nothing registered to the given poses", 0.63),
    (r"warning:", 0.63),
    (r"sfm: \d+/\d+ views registered", 0.645),
    (r"dense: depth fitted", 0.66),
    (r"dense: depth upsampled", 0.72),
    (r"dense: views agree", 0.86),
    (r"dense: none", 0.86),
    (r"dense: no stereo", 0.67),
    (r"dense: stereo on", 0.7),
    (r"dense: stereo kept", 0.86),
    (r"writing", 0.9),
    (r"colour-mapping", 0.96),
)
PIPELINE_DONE = 0.88  # the pipeline's own lines never go beyond this (exports and images follow)


def stage_fraction(message: str) -> float | None:
    """Where the stage that ``message`` starts sits in the progress bar (``None``: not a stage line)."""
    for pattern, fraction in STAGE_FRACTIONS:
        if re.match(pattern, message):
            return fraction
    step = re.match(r"dense: stereo view (\d+)/(\d+)", message)  # one view after another, between these two
    if step:
        return 0.7 + 0.15 * int(step[1]) / max(int(step[2]), 1)
    return None


class ServerStopping(UserError):
    """The server is stopping (SIGTERM, Ctrl-C): a running request ends at its next progress line."""

    def __init__(self) -> None:
        super().__init__("the server is stopping: try again in a minute")


class StageProgress:
    """Turns progress lines into ``sink(fraction, line)`` calls (the line through :func:`tidy_message`) with
    fractions that always increase: a stage line jumps to its stage's fraction, any other line (an out-of-memory
    retry, a stage met again) creeps forward a little. Once ``stop`` is set (the server stops), the next line
    raises :class:`ServerStopping`: the run unwinds there and its temporary folders go with it."""

    def __init__(self, sink: Callable[[float, str], None], stop: threading.Event | None = None) -> None:
        self.sink = sink
        self.stop = stop
        self.fraction = 0.0

    def __call__(self, message: str) -> None:
        if self.stop is not None and self.stop.is_set():
            raise ServerStopping()
        stage = stage_fraction(message)
        creep = self.fraction + 0.1 * (max(PIPELINE_DONE, self.fraction + 0.01) - self.fraction)
        self.fraction = stage if stage is not None and stage > self.fraction else min(creep, 0.99)
        self.sink(self.fraction, tidy_message(message))  # as a visitor sees it: no server paths, no options


def default_work_root() -> Path:
    """Where the web app's work folders go: inside Gradio's upload folder (``GRADIO_TEMP_DIR``), so that the
    results it serves are the files it wrote, not copies Gradio makes in its cache."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()) / "mum-web"


@dataclass
class WebConfig:
    """Serving limits and defaults (command-line flags of ``mum-web``)."""

    device: str = "cpu"
    max_files: int = 64  # files in one submission
    max_views: int = 32  # views given to the model (video frames are sampled down to this)
    window: int | None = None  # views per network pass; more run in joined chunks (None: what memory allows)
    max_file_mb: float = 64.0  # per uploaded file
    max_request_mpx: float = 400.0  # megapixels of all views of one request together (image headers)
    concurrency: int = 1  # model runs at once on the device
    max_queue: int = 16  # waiting requests before new ones are refused
    max_sessions: int = 64  # cached results kept in memory (least recently used dropped first)
    long_side: int | None = None  # network input size (None: the model's)
    chunk_size: int | None = None
    max_disk_mb: float = 4096.0  # temporary disk: work folders, uploads (oldest results evicted first)
    work_root: Path = field(default_factory=default_work_root)
    own_gradio_dir: bool = False  # Gradio's upload folder is this server's alone (mum-web's own default)
    session_ttl_s: float = 6 * 3600  # a session's result is removed after this long unused
    api_ttl_s: float = 600  # an API result nobody downloads is removed after this long
    upload_ttl_s: float = 3600  # an upload no request used is removed after this long
    janitor_s: float = 30  # how often expired files are looked for
    api_conf_percentile: float | None = None  # None: the CLI's rule, 0 (default path) or 50 (fast)
    api_max_points: int = 2_000_000  # the CLI's default

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def max_disk_bytes(self) -> int:
        return int(self.max_disk_mb * 1024 * 1024)

    def store(self) -> ResultStore:
        """The result store for a server with these limits."""
        return ResultStore(
            self.work_root, self.max_disk_bytes, self.max_sessions, session_ttl_s=self.session_ttl_s,
            api_ttl_s=self.api_ttl_s, upload_ttl_s=self.upload_ttl_s, own_gradio_dir=self.own_gradio_dir,
        )

    def api_percentile(self, fast: bool) -> float:
        """The API's confidence percentile for a run in mode ``fast``."""
        return default_conf_percentile(fast) if self.api_conf_percentile is None else float(self.api_conf_percentile)


# The engine's advice names the command's options; the page has its own controls (and no --dense, --dense-size or
# --size: the server's settings). Each piece of advice a visitor can meet, as the page would give it.
# (regular expression, replacement), in order.
WEB_ADVICE: tuple[tuple[str, str], ...] = (
    (r"use a smaller --dense-size or --dense fitted",
     "use fewer views (“At most this many views”, “Keep every n-th frame”) or the fast preview"),
    (r"use fewer views \(--max-frames\) or a smaller (?:--size|resolution \(--size\))",
     "use fewer views (“At most this many views”)"),
    (r"give --window \d+ \(memory permitting\) or fewer views", "use fewer views (“At most this many views”)"),
    (r"set MUM_MAX_PIXELS or --max-pixels to allow more", "upload smaller images or a smaller video"),
    (r"\(kept: --fix-poses\)", "(kept: “Keep the given poses”)"),
    (r"--fix-poses", "“Keep the given poses”"),
    (r"--cameras (?:file|FILE)", "a cameras file"),
)


def tidy_message(message: str) -> str:
    """A message as a visitor sees it: no server paths. A path in Gradio's upload folder or in the temporary
    folder is cut to the file's own name (visitors know their files by name); the cameras upload's staging
    folder is named as such (:func:`cameras_upload` says which file); advice that names the command's options
    names the page's controls instead (:data:`WEB_ADVICE`). One line, at most 500 characters."""
    from gradio.utils import get_upload_folder

    from mum.errors import one_line

    for command, page in WEB_ADVICE:
        message = re.sub(command, page, message)
    roots = {get_upload_folder(), str(Path(get_upload_folder()).resolve()), tempfile.gettempdir(),
             str(Path(tempfile.gettempdir()).resolve())}
    pattern = "|".join(re.escape(r.rstrip("/")) for r in sorted(roots, key=len, reverse=True) if r.strip("/"))
    message = re.sub(rf"(?:{pattern})/(?:[^/\s:'\"]+/)*", "", message)  # the folders before a file's name
    message = re.sub(rf"(?:{pattern})(?:/[^/\s:'\"]+)*", "(a server folder)", message)  # a folder itself
    return one_line(message)[:500]


def user_errors(fn: Callable) -> Callable:
    """Turn a :class:`UserError` or an out-of-memory error into a ``gr.Error`` shown in the page."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            log.info("user error: %s", exc)
            raise gr.Error(tidy_message(str(exc)), print_exception=False) from None
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                log.exception("request failed")
                raise gr.Error(INTERNAL_MESSAGE, print_exception=False) from None
            _free_cuda()
            raise gr.Error(OOM_MESSAGE, print_exception=False) from None
        except gr.Error:
            raise
        except Exception:  # a bug, not the visitor's doing: the traceback goes to the server log only
            log.exception("request failed")
            raise gr.Error(INTERNAL_MESSAGE, print_exception=False) from None

    return wrapper


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def upload_paths(files: Any) -> list[Path]:
    """Gradio's uploaded file value(s) → paths."""
    if files is None:
        return []
    if isinstance(files, (str, Path)) or hasattr(files, "path") or isinstance(files, dict):
        files = [files]
    out = []
    for f in files:
        if isinstance(f, dict):
            f = f.get("path") or f.get("name")
        elif hasattr(f, "path"):
            f = f.path
        if f:
            out.append(Path(str(f)))
    return out


def upload_names(paths: Sequence[Path]) -> list[str]:
    """Readable distinct names for uploads, in upload order: each file's own name, and for a name met again
    ``NAME (2).EXT``, ``NAME (3).EXT`` … (Gradio keeps each upload in a folder named by a hash: two uploads of
    one file name were told apart by those hashes, which then named every view)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        name, k = path.name, 2
        while name in taken:
            name, k = f"{path.stem} ({k}){path.suffix}", k + 1
        taken.add(name)
        names.append(name)
    return names


def check_uploads(files: Any, cfg: WebConfig) -> list[Path]:
    """Refuse an empty submission, too many or too large files, and a mix of videos and images."""
    paths = upload_paths(files)
    if not paths:
        raise UserError("no files uploaded: add images (2 or more views work best) or one video")
    if len(paths) > cfg.max_files:
        raise UserError(f"too many files: {len(paths)} uploaded, at most {cfg.max_files} allowed")
    for p in paths:
        if not p.is_file():
            raise UserError(f"{p.name}: upload is missing, please upload it again")
        if p.stat().st_size > cfg.max_file_bytes:
            raise UserError(f"{p.name}: file is too large ({p.stat().st_size / 2**20:.1f} MB, limit {cfg.max_file_mb:g} MB)")
    videos = [p for p in paths if is_video_path(p)]
    if videos and len(paths) > 1:
        raise UserError("upload either images or one video, not both")
    for p in paths:
        if not (is_image_path(p) or is_video_path(p)):
            raise UserError(f"{p.name}: not an image or video file")
    return paths


COLMAP_MODEL_FILES = ("cameras", "images", "points3D")


@contextlib.contextmanager
def cameras_upload(files: Any) -> Iterator[Path | None]:
    """The uploaded cameras file as ``--cameras`` takes it: one ``cameras.json`` / ``transforms.json``, or a
    COLMAP model's ``cameras``, ``images`` and ``points3D`` files (``.txt`` or ``.bin``), gathered in a
    temporary folder for the run; ``None`` when nothing was uploaded."""
    paths = upload_paths(files)
    if not paths:
        yield None
        return
    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        yield paths[0]
        return
    stems = sorted(p.stem for p in paths)
    if stems != sorted(COLMAP_MODEL_FILES) or len({p.suffix.lower() for p in paths}) != 1 \
            or paths[0].suffix.lower() not in (".txt", ".bin"):
        raise UserError("cameras file: upload one cameras.json or transforms.json, or a COLMAP model's "
                        "cameras, images and points3D files (all .txt or all .bin)")
    with scratch_folder("mum-cameras-") as staged:
        folder = str(staged)
        for p in paths:
            shutil.copyfile(p, Path(folder) / p.name)
        try:
            yield Path(folder)
        except UserError as exc:  # "<folder>/images.bin: ..." -> "images.bin: ...", "<folder>: ..." -> named
            text = str(exc).replace(folder + "/", "").replace(folder, "the COLMAP model upload")
            raise UserError(text) from None


def known_for_uploads(files: Any, source, cameras: Path | None, fix_poses: bool, say: Callable[[str], None]):
    """What the cameras upload and the photos' EXIF say about each view of ``source`` (the views
    :func:`open_inputs` made of the checked uploads ``files``; the CLI's ``--cameras``/``--fix-poses``)."""
    from app.engine.known_cameras import known_cameras

    if fix_poses and cameras is None:
        raise UserError("keeping the given poses needs a cameras file")
    all_names = None if source.photos is None else upload_names(upload_paths(files))
    return known_cameras(source.names, source.sizes, source.photos, cameras, bool(fix_poses), all_names=all_names,
                         say=say)


def open_inputs(files: Any, cfg: WebConfig, scratch: Path, stride: int = 1, max_frames: int | None = None):
    """Checked uploads → a :class:`app.engine.view_source.ViewSource` (decoded chunk by chunk; a video's frames go to
    ``scratch``): what :func:`app.engine.pipeline.reconstruct_views` takes, so a long video runs in joined chunks."""
    from app.engine.view_source import open_views

    paths = check_uploads(files, cfg)
    limit = min(int(max_frames), cfg.max_views) if max_frames else cfg.max_views
    if len(paths) > limit:
        gr.Warning(f"{len(paths)} images uploaded: using {limit} of them, spread evenly (limit {cfg.max_views} views)")
    check_request_pixels(paths, limit, cfg)
    uploaded = upload_paths(files)
    named = dict(zip(uploaded, upload_names(uploaded)))
    if any(named.get(p, p.name) != p.name for p in paths):  # two uploads of one name: linked in by their names
        staged = scratch / "uploads"
        staged.mkdir(exist_ok=True)
        for k, p in enumerate(paths):
            link = staged / named.get(p, p.name)
            try:
                os.link(p, link)
            except OSError:  # no hard links here: a copy
                shutil.copyfile(p, link)
            paths[k] = link
    return open_views([str(p) for p in paths], scratch, stride=max(int(stride or 1), 1), max_frames=limit)


def check_request_pixels(paths: Sequence[Path], views: int, cfg: WebConfig) -> None:
    """Refuse, from the image headers alone (nothing decoded), a request whose ``views`` largest images hold
    more than ``cfg.max_request_mpx`` megapixels together: one request must not take the server's memory
    (each decoded view takes 3 bytes a pixel, and SfM and dense fitting more). A video's frames are bounded by
    the per-frame pixel limit and ``max_views``."""
    from mum.io import image_size

    sizes = sorted((w * h for w, h in (image_size(p) for p in paths if is_image_path(p))), reverse=True)
    total = sum(sizes[:views]) / 1e6
    if total > cfg.max_request_mpx:
        raise UserError(f"the images hold {total:.0f} megapixels together, more than this server takes in one request "
                        f"({cfg.max_request_mpx:g} Mpx): upload fewer or smaller images")


class Handlers:
    """The functions bound to the UI's events and to the API; ``models`` is shared by all sessions."""

    def __init__(self, cfg: WebConfig, models: ModelCache, store: ResultStore | None = None) -> None:
        self.cfg = cfg
        self.models = models
        self.store = cfg.store() if store is None else store

    # ----------------------------------------------------------------------------------- model run
    def reconstruct_scene(
        self,
        files: Any,
        model_label: str | None,
        stride: int,
        max_frames: int | None,
        progress_sink: Callable[[float, str], None],
        fast: bool = False,
        cameras: Any = None,
        fix_poses: bool = False,
    ) -> WebScene:
        """Uploads → a :class:`WebScene`: the pipeline's default path (network, SfM, multi-view stereo) or, with
        ``fast``, the network alone. ``progress_sink(fraction, line)`` gets the progress (a :class:`StageProgress`
        is used as it is); a warning line (SfM failed, the
        cameras come from the network) is also shown as a toast and kept in the scene for the summary.
        ``cameras``: an uploaded cameras file (:func:`cameras_upload`), ``fix_poses``: keep its poses (the CLI's
        ``--cameras`` and ``--fix-poses``)."""
        t0 = time.perf_counter()
        progress = progress_sink if isinstance(progress_sink, StageProgress) else StageProgress(progress_sink)
        progress.stop = self.store.stopping
        progress("reading uploads")
        self.store.make_room()  # old results go first; a full disk refuses the request before any work
        with scratch_folder("mum-web-frames-") as scratch:  # a video's decoded frames (a killed server's: swept)
            return self._reconstruct(files, model_label, stride, max_frames, progress, fast, scratch, t0,
                                     cameras, bool(fix_poses))

    def _reconstruct(self, files, model_label, stride, max_frames, progress, fast, scratch: Path, t0: float,
                     cameras: Any = None, fix_poses: bool = False) -> WebScene:
        from app.engine.pipeline import reconstruct_views
        from app.engine.options import CameraOptions, LongInputOptions, NetworkOptions, PipelineOptions

        source = open_inputs(files, self.cfg, scratch, stride, max_frames)
        with cameras_upload(cameras) as cameras_file:
            known = known_for_uploads(files, source, cameras_file, fix_poses, progress)
        progress(f"loading model {model_label or self.models.default}")
        model = self.models.get(model_label)
        warnings: list[str] = []

        def warn(message: str) -> None:
            warnings.append(message)
            log.info("%s", message)
            gr.Warning(message.removeprefix("warning: "))
            progress(message)

        # COLMAP's own log lines are not for users (mum.native_stderr: safe for runs overlapping in threads)
        options = PipelineOptions(
            fast=bool(fast), long_input=LongInputOptions(window=self.cfg.window, keep_pointmaps=True),
            network=NetworkOptions(long_side=self.cfg.long_side, device=self.models.device,
                                   chunk_size=self.cfg.chunk_size),
            cameras=CameraOptions(native_log=os.devnull))
        recon = reconstruct_views(model, source, options, on_stage=progress, warn=warn, known=known)
        recon.meta["total_s"] = time.perf_counter() - t0
        scene = WebScene.create(recon, self.store.root, model=getattr(model, "name", str(model_label)))
        scene.fast, scene.warnings = bool(fast), warnings
        scene.random_weights = self.models.random_weights(model_label)
        return scene

    @user_errors
    def run(
        self,
        files: Any,
        model_label: str | None,
        stride: int,
        max_frames: int | None,
        fast: bool,
        conf_percentile: float,
        show_cameras: bool,
        mask_background: bool,
        source: str,
        old: WebScene | None,
        cameras: Any = None,
        fix_poses: bool = False,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's way to ask for a progress bar
        request: gr.Request = None,
    ) -> tuple:
        """UI "Reconstruct": run the reconstruction once and show every result; the result goes into the session
        (replacing the session's previous one) together with its uploads. A refused submission's unusable files
        are deleted at once, its other files stay with the session so that the user can correct the selection."""
        key = session_key(request) or self.store.key_of(old) or f"local-{uuid.uuid4().hex}"
        paths = upload_paths(files) + upload_paths(cameras)
        stages = StageProgress(lambda f, m: progress(f, desc=m))
        with self.store.request(paths):
            try:
                scene = self.reconstruct_scene(files, model_label, stride, max_frames, stages, fast=bool(fast),
                                               cameras=cameras, fix_poses=bool(fix_poses))
            except DiskFull:
                raise
            except Exception as exc:
                self.store.add_session(key, None, [p for p in paths if not names_file(str(exc), p)])
                raise
            self.store.add_session(key, scene, paths)
        if old is not None and old is not scene:
            self.store.discard(old)
        with self.store.using(scene):
            stages("writing point cloud, cameras and exports")
            options = RenderOptions(conf_percentile, None, bool(show_cameras), bool(mask_background), source or "depth")
            rendered = scene.render(options)
            stages("colour-mapping depth and confidence")
            gallery = scene.gallery()
        labels = frame_labels(scene.recon.names)
        frames = gr.CheckboxGroup(choices=[(lab, i) for i, lab in enumerate(labels)], value=list(range(len(labels))))
        return (
            str(rendered.glb),
            gallery,
            camera_rows(scene),
            rendered.downloads,
            frames,
            summary(scene, rendered.points),
            scene,
        )

    @user_errors
    def rerender(
        self,
        scene: WebScene | None,
        conf_percentile: float,
        frames: Sequence[int] | None,
        show_cameras: bool,
        mask_background: bool,
        source: str,
    ) -> tuple:
        """Filter and re-export the cached prediction; never runs the model."""
        if scene is None:
            gr.Info("Run a reconstruction first; the filters apply to its result.")
            return gr.skip(), gr.skip(), gr.skip(), scene
        picked = parse_frames(frames, scene.recon.num_views)
        if picked == []:
            gr.Warning("No frame selected: showing cameras only.")
        options = RenderOptions(conf_percentile, picked, bool(show_cameras), bool(mask_background), source or "depth")
        with self.store.using(scene):  # a removed result: ResultGone, a one-line message
            rendered = scene.render(options)
        return str(rendered.glb), rendered.downloads, summary(scene, rendered.points), scene

    # ----------------------------------------------------------------------------------------- API
    @user_errors
    def api_reconstruct(self, files: Any, fast: bool = False, cameras: Any = None,
                        fix_poses: bool = False) -> tuple[str, str, str]:
        """Images (or one video) → (scene.glb, scene.ply, cameras.json) with the CLI's defaults: the default
        path (SfM cameras, cross-checked dense points, no confidence filter) or with ``fast`` the network alone
        (points above the 50th confidence percentile); camera frustums in the GLB. ``cameras``/``fix_poses``:
        the CLI's ``--cameras``/``--fix-poses``. The uploads are deleted when
        the call returns, the result's folder once the client has downloaded its files."""
        with self.store.request(upload_paths(files) + upload_paths(cameras)):
            scene = self.reconstruct_scene(files, None, 1, None, lambda f, m: None, fast=bool(fast),
                                           cameras=cameras, fix_poses=bool(fix_poses))
            options = RenderOptions(self.cfg.api_percentile(bool(fast)), max_points=self.cfg.api_max_points)
            try:
                rendered = scene.render(options, full_exports=False)
            except BaseException:
                scene.close()
                raise
            self.store.add_api(scene, [rendered.glb, rendered.ply, rendered.cameras_json])
        self.store.make_room(refuse=False)  # the new result may push older ones out
        return str(rendered.glb), str(rendered.ply), str(rendered.cameras_json)

    def session_closed(self, request: gr.Request = None) -> None:
        """The page's session ended (tab closed or reloaded): its result and uploads go now."""
        self.store.close_session(session_key(request))


def session_key(request: Any) -> str | None:
    """The browser session of a request (``None`` outside a request: the handlers called directly)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"session-{session}" if session else None


def names_file(message: str, path: Path) -> bool:
    """An error message about ``path`` itself (it starts with the file's path or name): that upload is unusable."""
    return message.startswith((f"{path}:", f"{path.name}:", f"{os.path.realpath(path)}:"))


def camera_rows(scene: WebScene) -> Any:
    import pandas as pd

    return pd.DataFrame(camera_table(scene.recon), columns=CAMERA_TABLE_HEADERS)


def summary(scene: WebScene, points: int) -> str:
    """The status line: views and points shown; where the cameras came from (SfM's registered views and
    reprojection error, or the network); how well the views' depths agree; model, sizes and timings; the
    warning line of the run, if any."""
    r = scene.recon
    parts = [f"**{r.num_views} view{'s' if r.num_views != 1 else ''}** → **{points:,} points** shown"]
    sfm = r.meta.get("sfm")
    if scene.fast:
        given = r.pose_origins().count("given")
        parts.append(f"fast preview: {given} given cameras, the others from the network" if given
                     else "fast preview: cameras from the network")
    elif sfm is not None:
        given = r.pose_origins().count("given")
        cams = (f"**{given} given + {r.pose_origins().count('sfm')} SfM of {r.num_views} cameras**" if given
                else f"**{r.pose_origins().count('sfm')}/{r.num_views} cameras from SfM**")
        error = sfm.get("reprojection_px_mean")
        if error is not None and np.isfinite(error):
            cams += f", reprojection error {error:.2f} px"
        parts.append(cams)
    else:
        parts.append(f"**0/{r.num_views} cameras from SfM** (cameras from the network)")
    consistency = r.meta.get("consistency") or {}
    disagreement = consistency.get("median_depth_disagreement")
    if disagreement is not None and np.isfinite(disagreement):
        percent = lambda x: f"{100 * x:.1f}" if 100 * x >= 0.1 or x == 0 else f"{100 * x:.2g}"  # noqa: E731
        agree = f"views disagree by {percent(disagreement)} % over all pixels"
        cloud = consistency.get("cloud_median_depth_disagreement")
        if "pixels_kept" in consistency and not scene.fast and cloud is not None and np.isfinite(cloud):
            # the fast preview keeps pixels by confidence only; here: those another view confirms
            agree += f", {percent(cloud)} % over the {100 * consistency['pixels_kept']:.0f} % of pixels confirmed"
        parts.append(agree + " (median relative depth difference between views: self-consistency, not accuracy)")
    chunks = r.meta.get("chunks")
    if chunks:  # a long input: joined chunks (app.engine.chunked)
        loops = sum(1 for lp in chunks.get("loops", []) if lp.get("accepted"))
        parts.append(f"{chunks['count']} chunks of {chunks['window']} views joined" + (f", {loops} loop closure(s)" if loops else ""))
    w, h = r.meta.get("network_size", r.depth_size)
    sizes = f"network {w}×{h} px"
    if tuple(r.depth_size) != (w, h):
        sizes += f", depth {r.depth_size[0]}×{r.depth_size[1]} px"
    parts.append(f"model `{scene.model}` on {r.meta.get('device', '?')}, {sizes}")
    if "inference_s" in r.meta:
        parts.append(f"inference {r.meta['inference_s']:.2f} s, total {r.meta.get('total_s', 0):.1f} s")
    line = " · ".join(parts)
    if scene.random_weights:
        line += (f"\n\n⚠ `{scene.model}` has random weights (a preset without trained weights): for testing only, "
                 f"the result means nothing")
    for warning in scene.warnings:
        line += f"\n\n⚠ {warning}"
    return line
