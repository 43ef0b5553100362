"""``mum-web``: the Gradio app. Upload images or a video, reconstruct once (the pipeline's default path:
network, SfM cameras, dense depth fitted and cross-checked; or the network-only fast preview), inspect the point
cloud with its camera frustums, filter it by confidence and frame, download
PLY/GLB/COLMAP/transforms.json/cameras.json.

The same run is an API endpoint, ``/reconstruct`` (image files in; GLB, PLY and cameras.json out; ``fast=True``
for the network alone)::

    from gradio_client import Client, handle_file
    glb, ply, cameras = Client("http://127.0.0.1:7860/").predict(
        [handle_file("a.jpg"), handle_file("b.jpg")], api_name="/reconstruct")
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from mum.errors import OneLineArgumentParser
from mum.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from app.engine.reconstruction import DEFAULT_CONF_PERCENTILE, default_conf_percentile
from app.web.handlers import Handlers, WebConfig
from app.web.model_cache import ModelCache
from app.web.session import CAMERA_TABLE_HEADERS, ResultStore

log = logging.getLogger("mum.web")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"
EXAMPLE_SCENES = {  # demo folder → (label, views used by the example)
    "tum_freiburg": ("TUM RGB-D desk", 6),
    "sacre_coeur": ("Sacré-Cœur (photo collection)", 3),
    "buddha": ("Buddha statue (high resolution)", 3),
    "synthetic_room": ("Synthetic room (exact ground truth)", 4),
}

INTRO = """# MuM 3D reconstruction
Upload **several photos** of one scene (or **one video**), pick a model and press **Reconstruct**. The network
predicts every camera and per-pixel depth in one forward pass; structure-from-motion (SIFT, matching,
incremental mapping) then refines the cameras, and multi-view stereo on those cameras, with the network's depth
as its prior, gives each view's depth, kept where another view confirms it. *Fast preview* stops after the network. The filters on the right re-render the result
without running anything again."""


def example_scenes(demo_dir: Path = DEMO) -> tuple[list[list[list[str]]], list[str]]:
    """A few evenly spread views of each demo scene, as ``gr.Examples`` rows and their labels."""
    rows, labels = [], []
    for scene, (label, count) in EXAMPLE_SCENES.items():
        images = sorted(p for p in (demo_dir / scene / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            step = max(len(images) // count, 1)
            rows.append([[str(p) for p in images[::step][:count]]])
            labels.append(f"{label}: {min(count, len(images))} views")
    return rows, labels


def paths_only(component: gr.File) -> gr.File:
    """``component``'s preprocessing hands the uploaded paths over and nothing else. Gradio's own
    (``File._process_single_file``) leaves an empty temporary file in its upload folder for every file of every
    request, never deleted. The file types are checked by the handlers, which also delete a refused upload.
    (An instance attribute: a subclass of a Gradio component makes Gradio write a ``.pyi`` file next to this
    module.)"""
    from gradio.data_classes import ListFiles

    def preprocess(payload: Any) -> str | list[str] | None:
        if payload is None:
            return None
        files = [f.path for f in payload.root] if isinstance(payload, ListFiles) else [payload.path]
        return files[0] if component.file_count == "single" else files

    component.preprocess = preprocess
    return component


def build_app(cfg: WebConfig, models: ModelCache) -> gr.Blocks:
    """The page layout and its events (no serving options: see :func:`launch`). The app's
    :class:`~app.web.session.ResultStore` is ``app.result_store``."""
    h = Handlers(cfg, models)
    accepted = list(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    # delete_cache: Gradio's own sweep of what it copied, a backstop behind the result store
    with gr.Blocks(title="MuM 3D reconstruction", delete_cache=(1800, 6 * 3600)) as app:
        gr.Markdown(INTRO)
        scene = gr.State(None, time_to_live=cfg.session_ttl_s, delete_callback=h.store.discard)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                files = paths_only(gr.File(
                    file_count="multiple", file_types=accepted, label="Images or one video", elem_id="uploads"
                ))
                model = gr.Dropdown(models.labels, value=models.default, label="Model", elem_id="model")
                with gr.Accordion("Video frame sampling", open=False):
                    stride = gr.Slider(1, 30, value=1, step=1, label="Keep every n-th frame")
                    max_frames = gr.Slider(
                        2, cfg.max_views, value=min(16, cfg.max_views), step=1, label="At most this many views"
                    )
                fast = gr.Checkbox(
                    False, label="Fast preview (network only)", elem_id="fast",
                    info="one forward pass: cameras and depth from the network, no SfM, no dense fitting",
                )
                with gr.Accordion("Known cameras (optional)", open=False):
                    cameras = paths_only(gr.File(
                        file_count="multiple", file_types=[".json", ".txt", ".bin"], elem_id="cameras_file",
                        label="cameras.json, transforms.json, or a COLMAP model's cameras/images/points3D files",
                    ))
                    fix_poses = gr.Checkbox(
                        False, label="Keep the given poses", elem_id="fix_poses",
                        info="the file's poses are kept exactly (its world frame and scale); the other views are "
                        "registered to them. Without it only the intrinsics are used (held fixed).",
                    )
                run = gr.Button("Reconstruct", variant="primary", elem_id="run")
                examples, example_labels = example_scenes()
                if examples:
                    gr.Examples(examples, inputs=[files], label="Example scenes", example_labels=example_labels)
                status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=2):
                viewer = gr.Model3D(
                    label="Point cloud and cameras", height=520, clear_color=(0.1, 0.1, 0.12, 1.0), elem_id="viewer"
                )
                with gr.Row():
                    conf = gr.Slider(
                        0, 99, value=DEFAULT_CONF_PERCENTILE, step=1, elem_id="conf",
                        label="Confidence percentile (drop points below)",
                    )
                    source = gr.Radio(["depth", "pointmap"], value="depth", label="Points from")
                with gr.Row():
                    show_cams = gr.Checkbox(True, label="Show cameras")
                    mask_bg = gr.Checkbox(False, label="Mask background (near-black / near-white pixels)")
                frames = gr.CheckboxGroup([], type="value", label="Frames", show_select_all=True, elem_id="frames")
        with gr.Tab("Depth and confidence"):
            gallery = gr.Gallery(label="Input · depth · confidence per view", columns=6, height=420, format="png")
        with gr.Tab("Cameras"):
            table = gr.Dataframe(headers=CAMERA_TABLE_HEADERS, label="Camera poses and intrinsics", elem_id="cameras")
            gr.Markdown(
                "source = where the pose came from (`given`: the cameras file, kept; `sfm`: registered by "
                "structure-from-motion; `network`: predicted, placed among the others when SfM missed the view); "
                "intrinsics = where the intrinsics came from (`given`, `exif`, `sfm`, `network`). Intrinsics in "
                "pixels of the original image (pixel centres at integer coordinates); centre = camera position in "
                "the world (first camera's frame, arbitrary scale; the file's with given poses kept); q = "
                "camera-from-world rotation, OpenCV axes."
            )
        downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")

        # the fast preview's points are not cross-checked: its confidence filter starts at 50 (the CLI's rule)
        fast.input(
            default_conf_percentile, inputs=[fast], outputs=[conf], api_visibility="undocumented", queue=False,
        )
        run.click(
            h.run,
            inputs=[files, model, stride, max_frames, fast, conf, show_cams, mask_bg, source, scene, cameras, fix_poses],
            outputs=[viewer, gallery, table, downloads, frames, status, scene],
            api_visibility="undocumented",
            concurrency_id="model",
            concurrency_limit=cfg.concurrency,
        )
        gr.on(
            [conf.release, frames.input, show_cams.input, mask_bg.input, source.input],
            h.rerender,
            inputs=[scene, conf, frames, show_cams, mask_bg, source],
            outputs=[viewer, downloads, status, scene],
            api_visibility="undocumented",
            concurrency_id="render",
            concurrency_limit=4,
            trigger_mode="always_last",
        )
        # the scripting endpoint: hidden components, documented on the page's "Use via API" panel
        with gr.Row(visible=False):
            api_files = paths_only(gr.File(file_count="multiple", label="images"))
            api_fast = gr.Checkbox(False, label="fast")
            api_cameras = paths_only(gr.File(file_count="multiple", label="cameras"))
            api_fix_poses = gr.Checkbox(False, label="fix_poses")
            api_glb = gr.File(label="scene.glb")
            api_ply = gr.File(label="scene.ply")
            api_cams = gr.File(label="cameras.json")
            api_button = gr.Button("reconstruct")
        api_button.click(
            h.api_reconstruct,
            inputs=[api_files, api_fast, api_cameras, api_fix_poses],
            outputs=[api_glb, api_ply, api_cams],
            api_name="reconstruct",
            api_description="Reconstruct a scene from image files (or one video) like mum-reconstruct: network, "
            "SfM cameras and dense depth cross-checked between views (fast=True: the network alone, points above "
            "the 50th confidence percentile). Returns scene.glb (points and camera frustums), scene.ply and "
            "cameras.json (the CLI's schema: per image name, width, height, K, cam_from_world, source, "
            "pose_source, intrinsics_source). Optional: cameras (a cameras.json, transforms.json or COLMAP model "
            "files, like --cameras) and fix_poses (keep their poses, like --fix-poses).",
            concurrency_id="model",
            concurrency_limit=cfg.concurrency,
        )
        app.unload(h.session_closed)  # a closed page's result and uploads go at once
    h.store.attach(app)
    app.result_store = h.store
    return app


class ServedFiles:
    """ASGI middleware that tells the result store what the upload and file routes did: the paths an upload
    stored (``POST …/upload`` answered 200; recorded before the client hears of them), and each file a client
    downloaded in full (``GET …/file=PATH`` answered 200), so that an API call's result folder goes as soon as
    its files are fetched. It also holds uploads to the disk budget as they arrive
    (:meth:`~app.web.session.ResultStore.admit_upload`): one that does not fit is answered 413 before a byte of
    it is stored, one that grows beyond what fits is cut off, and what a cut-off upload left is removed."""

    def __init__(self, app: Any, store: ResultStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path, method = scope.get("path", ""), scope.get("method")
        if scope.get("type") != "http" or not (
            (method == "GET" and "/file=" in path) or (method == "POST" and path.endswith("/upload"))
        ):
            await self.app(scope, receive, send)
            return
        if method == "POST":
            await self._upload(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "done": False}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.pathsend":
                seen["done"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                seen["done"] = True
            await send(message)

        await self.app(scope, receive, watch)
        if seen["status"] == 200 and seen["done"]:
            import anyio

            await anyio.to_thread.run_sync(self.store.served, path.split("/file=", 1)[1])

    async def _upload(self, scope: dict, receive: Any, send: Any) -> None:
        import anyio

        from app.web.session import DiskFull

        declared = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                try:
                    declared = max(int(value), 0)
                except ValueError:
                    declared = None
        try:
            ticket = await anyio.to_thread.run_sync(self.store.admit_upload, declared)
        except DiskFull as exc:
            log.info("upload refused: %s", exc)
            await _answer(send, 413, str(exc))
            return
        seen: dict[str, Any] = {"status": 0, "body": [], "stored": False, "arrived": 0}

        async def counted() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                seen["arrived"] += size
                try:
                    if declared is None:
                        ticket.grow(size)
                    elif seen["arrived"] > declared:  # more than it said: cut off
                        raise DiskFull("the upload is longer than its Content-Length")
                except DiskFull as exc:
                    log.info("upload cut off: %s", exc)
                    return {"type": "http.disconnect"}
            return message

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["body"].append(message.get("body", b""))
                if not message.get("more_body", False) and seen["status"] == 200:
                    seen["stored"] = True
                    self.store.uploaded(uploaded_paths(b"".join(seen["body"])))
            await send(message)

        try:
            await self.app(scope, counted, watch)
        finally:
            await anyio.to_thread.run_sync(ticket.end, seen["stored"])


async def _answer(send: Any, status: int, text: str) -> None:
    """A plain-text answer (``text``, one line) to a request whose body is not read."""
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def uploaded_paths(body: bytes) -> list[str]:
    """The paths in the upload route's answer (a JSON list)."""
    import json

    try:
        paths = json.loads(body)
    except ValueError:
        return []
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def janitor(store: ResultStore, every_s: float):
    """A lifespan for the server: every ``every_s`` seconds the store expires old results and keeps the disk
    budget; when the server stops, everything it holds is deleted."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any):
        import anyio

        async def loop() -> None:
            while True:
                await asyncio.sleep(every_s)
                try:
                    await anyio.to_thread.run_sync(store.tick)
                except Exception:  # noqa: BLE001 - the janitor keeps going; the next tick tries again
                    log.exception("cleaning up the web app's temporary files failed")

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await anyio.to_thread.run_sync(store.close_all)

    return lifespan


def auth_from_env() -> tuple[str, str] | None:
    """``(MUM_WEB_USER or "mum", MUM_WEB_PASSWORD)`` when a password is set, else ``None``."""
    password = os.environ.get("MUM_WEB_PASSWORD")
    return (os.environ.get("MUM_WEB_USER", "mum"), password) if password else None


def launch(app: gr.Blocks, cfg: WebConfig, host: str, port: int, block: bool = True, quiet: bool = False):
    """Serve ``app``: queued model runs, upload size limit, optional password, never a public share link; its
    result store deletes what downloads and sessions no longer need and keeps the disk budget."""
    from starlette.middleware import Middleware

    app.queue(max_size=cfg.max_queue, default_concurrency_limit=cfg.concurrency)
    store: ResultStore = app.result_store
    return app.launch(
        server_name=host,
        server_port=port,
        share=False,
        auth=auth_from_env(),
        max_file_size=cfg.max_file_bytes,
        allowed_paths=[str(DEMO)],
        footer_links=["api"],
        prevent_thread_lock=not block,
        show_error=True,
        quiet=quiet,
        ssr_mode=False,
        state_session_capacity=cfg.max_sessions,
        app_kwargs={"middleware": [Middleware(ServedFiles, store=store)], "lifespan": janitor(store, cfg.janitor_s)},
    )


# numeric options: (type, lowest, highest); the highest keeps every derived byte count and Gradio's own limits
# finite (an "inf" or "1e30" MB budget used to end in an OverflowError traceback)
NUMERIC_OPTIONS: dict[str, tuple[type, float, float]] = {
    "port": (int, 1, 65535),
    "size": (int, 16, 4096),
    "chunk_size": (int, 1, 10_000),
    "concurrency": (int, 1, 64),
    "max_queue": (int, 1, 10_000),
    "max_sessions": (int, 1, 100_000),
    "max_files": (int, 1, 10_000),
    "max_views": (int, 2, 100_000),
    "window": (int, 2, 100_000),
    "max_file_mb": (float, 1, 1_000_000),
    "max_request_mpx": (float, 1, 1_000_000),
    "max_disk_mb": (float, 1, 1_000_000_000),
    "model_cache_mb": (float, 1, 1_000_000_000),
}
ENV_OPTIONS = {"port": "MUM_WEB_PORT", "max_disk_mb": "MUM_WEB_MAX_DISK_MB", "model_cache_mb": "MUM_WEB_MODEL_CACHE_MB"}


def build_parser() -> argparse.ArgumentParser:
    """``mum-web``'s options. Numbers are parsed and range-checked by :func:`check_args` (one ``error:`` line for
    ``inf``, ``1e30`` or ``abc``, from the command line or the environment)."""
    env = os.environ.get
    p = OneLineArgumentParser(prog="mum-web", description="Web app for feedforward 3D reconstruction (Gradio).")
    p.add_argument("--host", default=env("MUM_WEB_HOST", "127.0.0.1"), help="address to listen on (0.0.0.0 in Docker)")
    p.add_argument("--port", default=None, help="port (default 7860) [MUM_WEB_PORT]")
    p.add_argument("--model", default=env("MUM_MODEL") or None, help="default model preset or checkpoint path [MUM_MODEL]")
    p.add_argument("--weights", default=env("MUM_WEIGHTS") or None, help="weights file for --model [MUM_WEIGHTS]")
    p.add_argument("--device", default=env("MUM_DEVICE", "auto"), help="auto, cpu, cuda, cuda:N [MUM_DEVICE]")
    p.add_argument("--size", default=None, help="network input size, longer side in px (default: the model's)")
    p.add_argument("--chunk-size", default=None, help="frames per encoder/DPT chunk")
    p.add_argument("--concurrency", default="1", help="model runs at once on the device (default 1)")
    p.add_argument("--max-queue", default="16", help="waiting requests before new ones are refused")
    p.add_argument("--max-sessions", default="64", help="users whose result is kept in memory for the filters")
    p.add_argument("--max-files", default="64", help="files per upload")
    p.add_argument("--max-views", default="32",
                   help="views per reconstruction, the frame cap of a video (more are sampled down; default 32); "
                        "beyond --window they run in joined chunks, as mum-reconstruct's long inputs")
    p.add_argument("--window", default=None,
                   help="views per network pass (default: what a quarter of the available memory holds, at most 128)")
    p.add_argument("--max-file-mb", default="64", help="size limit per uploaded file, MB")
    p.add_argument("--max-request-mpx", default="400",
                   help="megapixels of all images of one request together, read from their headers (default 400)")
    p.add_argument("--max-disk-mb", default=None,
                   help="temporary disk for uploads and results, MB; oldest results evicted first, an upload that "
                        "does not fit is refused at once (default 4096) [MUM_WEB_MAX_DISK_MB]")
    p.add_argument("--model-cache-mb", default=None,
                   help="memory for loaded models, MB; the least recently used are evicted (default 8192) "
                        "[MUM_WEB_MODEL_CACHE_MB]")
    p.add_argument("--allow-random-models", action="store_true", default=env("MUM_WEB_ALLOW_RANDOM_MODELS") == "1",
                   help="also offer visitors the presets without trained weights (random weights, for testing; "
                        "some take gigabytes) [MUM_WEB_ALLOW_RANDOM_MODELS=1]")
    p.add_argument("--preload", action="store_true",
                   help="load the default model and run --self-check's tiny reconstruction with it before serving")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile each model's encoder and aggregator blocks when it is loaded (tens of seconds)")
    p.add_argument("--self-check", action="store_true",
                   help="run a tiny reconstruction (3 views) through the model on the device and exit: one line, "
                        "exit status 0 when it works (the Docker HEALTHCHECK)")
    p.add_argument("--quiet", action="store_true", help="less logging")
    return p


DEFAULTS = {"port": "7860", "max_disk_mb": "4096", "model_cache_mb": "8192"}


def check_args(args: argparse.Namespace) -> None:
    """Parse and range-check the numeric options (:data:`NUMERIC_OPTIONS`; from the command line, else the
    environment variable of :data:`ENV_OPTIONS`, else the default) in place: one-line :class:`UserError` for
    values the server would fail on later (or serve nonsense with)."""
    import math

    from mum.errors import UserError, one_line

    for name, (kind, lo, hi) in NUMERIC_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        value, source = getattr(args, name), flag
        if value is None and name in ENV_OPTIONS and os.environ.get(ENV_OPTIONS[name], "").strip():
            value, source = os.environ[ENV_OPTIONS[name]], ENV_OPTIONS[name]
        if value is None:
            value = DEFAULTS.get(name)
        if value is None:
            continue
        text = str(value).strip().replace("_", "")
        try:
            number = float(text) if kind is float else int(text)
        except ValueError:
            raise UserError(f"{source} {one_line(str(value))!r}: not a {'number' if kind is float else 'whole number'}"
                            ) from None
        if not (math.isfinite(number) and lo <= number <= hi):
            raise UserError(f"{source} {one_line(str(value))!r}: must be between {lo:g} and {hi:g}")
        setattr(args, name, number)
    if args.max_disk_mb < args.max_file_mb:
        raise UserError(f"--max-disk-mb must be at least --max-file-mb ({args.max_file_mb:g})")
    examples_mb = examples_size_mb()  # the page's example images are copied into its folder and stay there
    if args.max_disk_mb < examples_mb + args.max_file_mb:
        raise UserError(f"--max-disk-mb must be at least {math.ceil(examples_mb + args.max_file_mb)}: the example "
                        f"scenes' {examples_mb:.1f} MB, which the page keeps in its folder, plus --max-file-mb "
                        f"({args.max_file_mb:g}) for one upload")


def examples_size_mb(demo_dir: Path = DEMO) -> float:
    """The size of the example scenes' images (:func:`example_scenes`), in MB (2^20 bytes)."""
    rows, _ = example_scenes(demo_dir)
    return sum(os.path.getsize(path) for row in rows for files in row for path in files) / 2**20


def config_from_args(args: argparse.Namespace, device: str) -> WebConfig:
    return WebConfig(
        device=device,
        max_files=args.max_files,
        max_views=args.max_views,
        window=args.window,
        max_file_mb=args.max_file_mb,
        max_request_mpx=args.max_request_mpx,
        concurrency=args.concurrency,
        max_queue=args.max_queue,
        max_sessions=args.max_sessions,
        long_side=args.size,
        chunk_size=args.chunk_size,
        max_disk_mb=args.max_disk_mb,
        own_gradio_dir=True,  # GRADIO_TEMP_DIR: this server's own folder (see main)
    )


@contextlib.contextmanager
def server_temp_dir(port: int):
    """Gradio's upload folder for this server: ``GRADIO_TEMP_DIR`` when set, else ``<tmp>/mum-web-<port>`` (one
    folder per server, so that the disk budget counts and cleans this server's files only), removed when the
    server has served and stopped, or could not start in a folder it made (a folder that was there when it could
    not start may be the port's live server's)."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        yield
        return
    folder = Path(tempfile.gettempdir()) / f"mum-web-{port}"
    existed = folder.exists()
    # Gradio read GRADIO_TEMP_DIR when it was imported: its app makes <tmp>/gradio/vibe_edit_history (empty)
    gradio_default = Path(tempfile.gettempdir()) / "gradio"
    made_default = not gradio_default.exists()
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    served = False
    try:
        yield
        served = True
    finally:
        os.environ.pop("GRADIO_TEMP_DIR", None)
        if served or not existed:
            shutil.rmtree(folder, ignore_errors=True)
        if made_default:  # only what is still empty: another Gradio app may have started using it meanwhile
            for empty in (gradio_default / "vibe_edit_history", gradio_default):
                with contextlib.suppress(OSError):
                    empty.rmdir()


STOP_GRACE_S = 8.0  # how long a stopping server waits for running requests (docker stop kills after 10 s)


def serve_until_stopped(app: gr.Blocks) -> None:
    """Wait while ``app`` serves; Ctrl-C, SIGTERM (``docker stop``, systemd) or SIGHUP end the wait (they raise
    in this thread, :func:`app.engine.runtime.signals_as_interrupt`), and then the server stops cleanly: running
    requests are told to stop at their next progress line (their temporary folders go with them), the server
    closes, and what the result store holds is deleted."""
    store: ResultStore = app.result_store
    try:
        while app.is_running:
            time.sleep(0.2)
    finally:
        store.stopping.set()
        app.close()
        if not store.wait_idle(STOP_GRACE_S):
            log.warning("stopping with requests still running after %.0f s", STOP_GRACE_S)
        store.close_all()


def main(argv: list[str] | None = None) -> int:
    from app.engine.runtime import choose_device, friendly_errors

    @friendly_errors
    def _main() -> int:
        from mum.errors import UserError

        args = build_parser().parse_args(argv)
        check_args(args)
        if args.weights and not Path(args.weights).is_file():
            raise UserError(f"{args.weights}: weights file not found (mount it at /weights in Docker)")
        device = choose_device(args.device)
        if args.self_check:
            from app.engine.self_check import run

            return run(args.model, args.weights, device, compile_model=args.compile)
        with server_temp_dir(args.port):
            cfg = config_from_args(args, device)
            try:
                models = ModelCache(device, model=args.model, weights=args.weights, compile_models=args.compile,
                                    allow_random=args.allow_random_models,
                                    max_bytes=int(args.model_cache_mb * 2**20))
            except ValueError as exc:
                raise UserError(str(exc)) from None
            if args.preload:
                from app.engine.self_check import self_check

                print(self_check(models.get(None)), flush=True)  # a model or backend that cannot run stops the server here
            app = build_app(cfg, models)
            try:
                launch(app, cfg, args.host, args.port, block=False, quiet=args.quiet)
            except OSError as exc:  # port taken, an address this machine does not have
                raise UserError(
                    f"cannot serve on {args.host}:{args.port} ({exc}); pick another --port or --host"
                ) from None
            serve_until_stopped(app)
        return 0

    return _main()


if __name__ == "__main__":
    raise SystemExit(main())
