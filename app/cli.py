"""``mum-reconstruct PATH... -o OUT``: reconstruct a scene from images or a video and export it.

OUT's extension picks the export: ``.ply`` (point cloud), ``.glb`` (point cloud + camera frustums),
``.json`` (cameras.json); an OUT without a suffix (or ending in ``/``) is a folder that receives every export;
other suffixes are refused.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import os
import sys
import time
from pathlib import Path
from typing import Callable

from app.engine.runtime import (
    EXIT_INTERRUPTED,
    EXIT_OUT_OF_MEMORY,
    EXIT_USER_ERROR,
    choose_device,
    friendly_errors,
)
from app.engine.dense_options import DENSE_MODES, MAX_DENSE_SIZE
from mum.errors import OneLineArgumentParser, UserError
from mum.files import (atomic_dir, check_entry_folders, check_inputs_kept, check_output_path, check_replaceable,
                       scratch_folder)
from mum.schema import strict_json

FILE_EXPORTS = (".ply", ".glb", ".json")
CAMERAS_ONLY = ".json"  # the output kind that holds cameras alone: no depth, no cloud
# what a folder output receives: with --overwrite exactly these are replaced, anything else in the folder stays;
# each a file (None) or a folder of files named so (app.exports: depth maps, COLMAP model); anything else there is
# not this command's and is refused rather than replaced
FOLDER_CONTENTS = {
    "scene.ply": None, "scene.glb": None, "cameras.json": None,
    "depth": ("*.depth.npy", "*.conf.npy", "*.depth.png", "depth_scale.json"),
    "sparse/0": tuple(f"{table}.{ext}" for table in ("cameras", "images", "points3D", "frames", "rigs")
                      for ext in ("bin", "txt")),
    "transforms.json": None,
}
FOLDER_ENTRIES = tuple(FOLDER_CONTENTS)
MAX_SIZE = 4096  # --size: beyond this the network's memory is out of reach anyway


EXAMPLES = f"""\
examples:
  mum-reconstruct demo/tum_freiburg/images -o scene.ply        coloured point cloud (binary PLY)
  mum-reconstruct photos/ -o scene.glb --conf-percentile 70     point cloud + camera frustums
  mum-reconstruct clip.mp4 --max-frames 24 -o out/              a folder gets every export
  mum-reconstruct "shots/*.jpg" -o out/ --fast --overwrite      the network alone (one pass, no SfM)
  mum-reconstruct photos/ -o out/ --cameras cams.json           known intrinsics (held fixed in SfM)
  mum-reconstruct photos/ -o out/ --cameras sparse/0 --fix-poses   known cameras kept; depth fitted to them
  mum-reconstruct walk.mp4 -o out/ --window 64                  a long video: chunks of 64 views, joined
  mum-reconstruct photos/ -o scene.ply --dense fitted           a quicker, coarser cloud (no stereo)

By default cameras come from structure-from-motion (SIFT, matching, bundle adjustment; pycolmap on the CPU)
with the network's help, and depth from multi-view stereo on them, the depth maps' holes filled by the
network's depth fitted to the SfM points (--dense fitted: that fitted depth alone, cross-checked between views;
--dense none: the SfM points only); --fast keeps the network's own cameras and depth. EXIF focal lengths of photos are the initial ones; --cameras
FILE (cameras.json, a COLMAP model folder or transforms.json, matched by file name) gives intrinsics that are
used as they are, and with --fix-poses its poses are kept exactly (world frame and scale are the file's).

A folder output holds scene.ply, scene.glb, cameras.json, depth/, sparse/0/ (COLMAP) and transforms.json
(nerfstudio). Outputs are written atomically; an existing one is kept unless --overwrite is given, also one
that appears while the command runs. --overwrite on a folder replaces only those names in it: other files
stay, and one holding an input is refused. Images above 100 Mpx are refused from their header (--max-pixels
or MUM_MAX_PIXELS raise the limit); file names with control characters (newline) are refused.
Exit status: 0 done, {EXIT_USER_ERROR} bad input (one "error: ..." line), {EXIT_OUT_OF_MEMORY} out of memory,
{EXIT_INTERRUPTED} interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (temporary files are removed).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``mum-reconstruct`` argument parser; every option carries its help and default."""
    import heads

    p = OneLineArgumentParser(
        prog="mum-reconstruct",
        description="Feedforward 3D reconstruction: cameras, depth and a coloured point cloud from images or a video.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="PATH", help="image folder(s), image files, a quoted glob, or one video file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="scene.ply | scene.glb | cameras.json | a folder for every export")
    p.add_argument(
        "--model", default=None, metavar="NAME|FILE",
        help=f"model name ({', '.join(heads.list_models())}) or a checkpoint file (default: {heads.DEFAULT_MODEL})",
    )
    p.add_argument("--weights", default=None, metavar="FILE", help="weights file for the chosen preset (official MuM .pth, VGGT, safetensors)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help=f"network input size, longer side in px, at most {MAX_SIZE} (default: the model's)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="use at most N views, sampled uniformly (default: all)")
    p.add_argument("--stride", type=int, default=1, metavar="N", help="keep every N-th image or video frame (default: 1)")
    p.add_argument("--conf-percentile", type=float, default=None, metavar="P",
                   help="drop points below this confidence percentile, 0-100 (default: 0, or 50 with --fast; the "
                        "default path already keeps only points that another view confirms)")
    p.add_argument("--mask-background", action="store_true", help="drop near-black and near-white pixels")
    p.add_argument(
        "--points-from", choices=("depth", "pointmap"), default="depth",
        help="depth: unproject depth maps with the predicted cameras; pointmap: use the point head (default: depth)",
    )
    p.add_argument("--max-points", type=int, default=2_000_000, metavar="N", help="subsample the exported cloud to at most N points (default: 2000000)")
    p.add_argument("--chunk-size", type=int, default=None, metavar="N", help="frames per encoder/DPT chunk inside one network pass, lower to save memory (default: the model's)")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="views per network pass: longer inputs run in overlapping chunks of N views joined by Sim(3), "
                        "loop closures and a pose graph (default: what a quarter of the available memory holds, at most "
                        "128; every view in one pass when they fit)")
    p.add_argument("--overlap", type=int, default=None, metavar="N",
                   help="views shared by consecutive chunks of --window (default: a quarter of the window, at least 3)")
    p.add_argument("--sequence", choices=("auto", "on", "off"), default="auto",
                   help="treat the input as one ordered sequence: keyframes mapped by SfM, every other frame "
                        "registered to them (auto: a video or numbered frames, more than 30 views, default path)")
    p.add_argument("--max-pixels", default=None, metavar="N",
                   help="refuse images (and video frames) of more than N pixels, checked before decoding "
                        "(default: $MUM_MAX_PIXELS, else 100000000)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the encoder and aggregator blocks first (reported as compile_s; pays on a GPU "
                        "for many views, costs tens of seconds of compilation)")
    p.add_argument("--fast", action="store_true",
                   help="the network alone: one forward pass, its own cameras and depth (no matching, no SfM)")
    p.add_argument("--dense", choices=DENSE_MODES, default=None,
                   help="the default path's depth and cloud: stereo (multi-view stereo on the SfM cameras; the "
                        "depth maps' holes take the network's depth fitted to the SfM points), fitted (that fitted "
                        "depth alone: faster, coarser), none (the SfM points only) (default: stereo; none when OUT "
                        "is a cameras.json file, which holds no depth)")
    p.add_argument("--dense-size", type=int, default=None, metavar="PX",
                   help="long side of the dense depth maps, at least, up to the images' resolution; 0: the network's "
                        "(default: 640 with stereo, 256 with fitted; refused where no dense stage runs)")
    p.add_argument("--cameras", default=None, metavar="FILE",
                   help="known cameras: cameras.json, a COLMAP model folder (sparse/0) or transforms.json, matched "
                        "to the inputs by file name; its intrinsics are used as given (default: EXIF, else predicted)")
    p.add_argument("--fix-poses", action="store_true",
                   help="keep the poses of --cameras exactly (its world frame and scale); the other views are "
                        "registered to them, depth is fitted to them")
    p.add_argument("--refine", action="store_true", help=argparse.SUPPRESS)  # old flag: SfM is now the default
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs; in a folder only the command's own exports (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (implies no progress output)")
    return p


def _stage_printer(quiet: bool) -> Callable[[str], None]:
    from rich.console import Console

    console = Console(stderr=True)
    start = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            console.print(f"[dim]{time.perf_counter() - start:6.1f}s[/dim] {msg}")

    return say


def output_kind(output: str) -> str:
    """The export ``-o OUTPUT`` asks for: ``.ply``, ``.glb``, ``.json``, or ``""`` for a folder (no suffix, a
    trailing ``/``, an existing folder, or another suffix: refused later)."""
    if output.endswith(("/", os.sep)) or (os.altsep and output.endswith(os.altsep)):
        return ""
    return Path(output).suffix.lower()


def dense_default(kind: str) -> str:
    """The dense stage when ``--dense`` is not given: multi-view stereo, or none where the only output is
    cameras.json (``kind`` ``.json``: no depth map or cloud is written, so the stage would be work thrown away;
    the cameras are the same)."""
    return "none" if kind == CAMERAS_ONLY else "stereo"


def write_exports(out: Path, recon, args, say: Callable[[str], None], kind: str | None = None,
                  inputs: list[Path] = ()) -> tuple[list[Path], int]:
    """Write the export(s) that ``out`` asks for (``kind``: see :func:`output_kind`); return the files written
    and the number of points in the exported cloud.

    Nothing already at ``out`` is replaced without ``--overwrite``, not even what appeared during the run; with
    it, a folder output has only :data:`FOLDER_ENTRIES` replaced, never one holding one of ``inputs`` (the images
    and ``--cameras``)."""
    from app.exports import project_formats as export

    from app.engine.options import CloudOptions
    from app.engine.point_budget import bounded_point_cloud

    suffix = out.suffix.lower() if kind is None else kind
    if suffix == CAMERAS_ONLY:  # no cloud to build
        return [export.write_cameras_json(out, recon, overwrite=args.overwrite)], 0
    cloud = bounded_point_cloud(recon, CloudOptions(args.max_points, conf_percentile(args), args.mask_background,
                                                    args.points_from))
    if suffix == ".ply":
        return [export.write_ply(out, cloud, overwrite=args.overwrite)], len(cloud)
    if suffix == ".glb":
        return [export.write_glb(out, recon, cloud, overwrite=args.overwrite)], len(cloud)
    written = []
    with atomic_dir(out, overwrite=args.overwrite, entries=FOLDER_ENTRIES, protected=inputs) as tmp:
        steps = [
            ("scene.ply", lambda: export.write_ply(tmp / "scene.ply", cloud)),
            ("scene.glb", lambda: export.write_glb(tmp / "scene.glb", recon, cloud)),
            ("cameras.json", lambda: export.write_cameras_json(tmp / "cameras.json", recon)),
            ("depth/", lambda: export.write_depth_maps(tmp / "depth", recon)),
        ]
        steps += [(name, (lambda fn=fn: fn(tmp, recon, cloud))) for name, fn in export.extra_folder_exports()]
        for name, fn in steps:
            say(f"writing {out / name}")
            fn()
            written.append(out / name)
    return written, len(cloud)


def conf_percentile(args: argparse.Namespace) -> float:
    """The confidence percentile in force: the user's, else 50 with ``--fast`` and 0 otherwise."""
    from app.engine.reconstruction import default_conf_percentile

    if args.conf_percentile is not None:
        return args.conf_percentile
    return default_conf_percentile(args.fast)


def _warn(msg: str) -> None:
    """Warnings go to stderr as one line each, even with --quiet/--json (they say the result is weaker)."""
    print(msg if msg.startswith("warning:") else f"warning: {msg}", file=sys.stderr)


def given_cameras(args: argparse.Namespace) -> list[Path]:
    """The ``--cameras`` file or folder, if one was given: an input like the images (never replaced)."""
    return [] if args.cameras is None else [Path(args.cameras)]


def check_arguments(args: argparse.Namespace) -> tuple[Path, str]:
    """Check the options and the output before anything is loaded; return the output path and its kind
    (:func:`output_kind`). Every problem is a one-line :class:`UserError`; the only change on disk is the removal
    of temporaries that killed runs left beside the output."""
    kind = output_kind(args.output)
    if args.conf_percentile is not None and not 0 <= args.conf_percentile < 100:
        raise UserError("--conf-percentile must be in [0, 100)")
    for option in ("max_frames", "stride", "size", "max_points", "chunk_size", "overlap"):  # huge counts mean "all"
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UserError(f"--{option.replace('_', '-')} must be at least 1")
    if args.window is not None and args.window < 2:
        raise UserError("--window must be at least 2 (views per network pass)")
    if args.window is not None and args.overlap is not None and args.overlap >= args.window:
        raise UserError("--overlap must be smaller than --window")
    if args.fast and (args.dense is not None or args.dense_size is not None):
        raise UserError("--dense and --dense-size choose the default path's dense stage; --fast is the network alone "
                        "(drop one or the other)")
    if args.dense_size is not None and not 0 <= args.dense_size <= MAX_DENSE_SIZE:
        raise UserError(f"--dense-size must be between 0 (the network's grid) and {MAX_DENSE_SIZE} (px)")
    if args.size is not None and args.size > MAX_SIZE:  # 2**31 px used to crash OpenCV and NumPy
        raise UserError(f"--size must be at most {MAX_SIZE} (px, the longer side of the network input)")
    from mum.io import pixel_limit  # the --max-pixels flag, else MUM_MAX_PIXELS: a bad value fails here

    limit = pixel_limit(args.max_pixels)  # "3e8" and "300_000_000" are numbers too
    args.max_pixels = None if args.max_pixels is None else limit
    from mum.layers.attention import requested_backend  # MUM_ATTENTION: an unknown name fails here

    requested_backend()
    if args.fix_poses and args.cameras is None:
        raise UserError("--fix-poses needs --cameras FILE (the poses to keep)")
    if args.sequence == "on" and (args.fast or args.fix_poses):
        raise UserError("--sequence on: " + ("--fast has no SfM" if args.fast else
                                             "--fix-poses keeps given poses in one pass"))
    if args.cameras is not None and not os.path.exists(args.cameras):
        raise UserError(f"{args.cameras}: no such cameras file or folder (--cameras)")
    out = check_output_path(args.output, args.overwrite, inputs=[*args.inputs, *given_cameras(args)])
    if kind in FILE_EXPORTS and out.is_dir():
        raise UserError(f"{out}: is a folder; a {kind} output must be a file")
    if args.dense_size is not None and (args.dense or dense_default(kind)) == "none":
        raise UserError("--dense-size sizes the dense stage, and there is none here"
                        + (" (a cameras.json output skips it: add --dense stereo or fitted)" if args.dense is None
                           else " (--dense none)") + "; drop --dense-size")
    if kind and kind not in FILE_EXPORTS and not out.is_dir():
        raise UserError(f"{out}: unknown output type {out.suffix!r}: use .ply, .glb, .json, or a folder "
                        f"(end it with / to name a folder with a dot)")
    if kind not in FILE_EXPORTS:
        kind = ""
        if os.path.lexists(out) and not out.is_dir():
            raise UserError(f"{out}: is a file; a folder output (every export) cannot replace it")
        if out.is_dir():  # a user's file named "sparse" is not replaced by sparse/0/, nor a folder named scene.ply
            if not os.access(out, os.W_OK | os.X_OK):  # --overwrite writes into it: known now, not after the run
                raise UserError(f"{out}: folder is not writable, cannot write the outputs into it")
            check_entry_folders(out, FOLDER_ENTRIES)
    return out, kind


def compile_model(model, say: Callable[[str], None]) -> float:
    """``--compile``: the model's blocks under ``torch.compile``, compiled now; returns the seconds it took. A
    compiler that cannot run here (no C++ compiler for the CPU, no Triton for CUDA) is one ``error:`` line."""
    say("compiling the encoder and aggregator blocks (torch.compile)")
    try:
        seconds = model.compile_for_inference()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the compiler's failures are many and long; the first line says enough
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--compile: torch.compile failed ({type(exc).__name__}: {first[:300]}); run without --compile") from None
    say(f"compiled in {seconds:.1f} s")
    return seconds


def _known_cameras(args: argparse.Namespace, inputs: list[Path], source, say: Callable[[str], None]):
    """What ``--cameras`` and the photos' EXIF say about each view of ``source`` (an
    :class:`app.engine.view_source.ViewSource`; :mod:`app.engine.known_cameras`)."""
    from mum.io import view_names
    from app.engine.known_cameras import known_cameras

    all_names = None
    if source.photos is not None:  # every input's view name, before --stride/--max-frames: an entry naming a dropped one is fine
        try:
            all_names = view_names(inputs)
        except UserError:  # a name the exports cannot hold, among the inputs left out
            all_names = [p.name for p in inputs]
    return known_cameras(source.names, source.sizes, source.photos, args.cameras, args.fix_poses,
                         all_names=all_names, say=say)


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Run the command on ``argv`` (default: ``sys.argv``); returns the exit status."""
    if argv is None:  # this process is the command: skip the final garbage collection over torch (~0.4 s at exit)
        atexit.register(gc.freeze)
    args = build_parser().parse_args(argv)
    say = _stage_printer(args.quiet or args.json)
    out, kind = check_arguments(args)
    device = choose_device(args.device)
    t0 = time.perf_counter()

    from mum.io import input_files

    inputs = input_files(args.inputs)
    kept = [*inputs, *given_cameras(args)]  # never replaced, whatever --overwrite says
    # an input inside what the export replaces (a symbolic link into the output folder, say) would be lost
    check_inputs_kept([out / e for e in FOLDER_ENTRIES] if kind == "" else [out], kept)
    if kind == "" and out.is_dir():  # nor what holds the user's own files (a folder named scene.ply, say)
        check_replaceable(out, FOLDER_CONTENTS)

    import heads
    from app.engine.pipeline import reconstruct_views
    from app.engine.stage_clock import StageClock
    from app.engine.options import CameraOptions, LongInputOptions, NetworkOptions, PipelineOptions
    from app.engine.view_source import open_views

    scratch = contextlib.ExitStack()  # a video's decoded frames; removed on any exit (a killed run's: by the next)
    atexit.register(scratch.close)
    source = open_views(args.inputs, scratch.enter_context(scratch_folder("mum-frames-")), stride=args.stride,
                        max_frames=args.max_frames, max_pixels=args.max_pixels)
    say(f"found {len(source)} views")
    known = _known_cameras(args, inputs, source, say)

    try:
        model = heads.load_model(args.model or heads.DEFAULT_MODEL, weights=args.weights, device=device)
    except ValueError as exc:  # an unknown name, or --weights with a checkpoint path
        raise UserError(f"--model/--weights: {exc}") from None
    say(f"model {model.name} on {device}")
    compile_s = compile_model(model, say) if args.compile else None
    if args.model in heads.PRESETS and args.weights is None and not args.quiet:
        print(f"note: {args.model} has no bundled weights and no --weights was given: random weights, for testing "
              f"only (the trained default is {heads.DEFAULT_MODEL})", file=sys.stderr)
    # COLMAP's own log is not for users; --fast measures its disagreement only for the --json summary
    from app.engine.dense_options import DenseOptions

    long_input = LongInputOptions(window=args.window, overlap=args.overlap,
                                  sequence={"auto": None, "on": True, "off": False}[args.sequence],
                                  keep_pointmaps=args.points_from == "pointmap")
    options = PipelineOptions(fast=args.fast, fast_consistency=args.json, long_input=long_input,
                              network=NetworkOptions(long_side=args.size, device=device, chunk_size=args.chunk_size),
                              cameras=CameraOptions(native_log=os.devnull),
                              dense=DenseOptions(mode=args.dense or dense_default(kind), size=args.dense_size))
    with scratch:
        recon = reconstruct_views(model, source, options, on_stage=say, warn=_warn, known=known)
    export_clock = StageClock()
    try:
        written, points = write_exports(out, recon, args, say, kind=kind, inputs=kept)
    except OSError as exc:  # disk full, permissions: the atomic writers have removed their temporary files
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from None
    export_clock.lap("export")
    scratch.close()  # the frames are read: gone now (a caller running main() many times holds no folder or lock)
    if points == 0 and kind != CAMERAS_ONLY:  # exit 0 with an empty scene.ply would look like success
        _warn("warning: the point cloud is empty: no depth was confirmed between views (cameras without a baseline: "
              "photos taken from one spot?), no SfM point for --dense none, or the filters (--conf-percentile, "
              "--mask-background) dropped every point")
    stage_seconds = recon.meta.get("stage_seconds") or {}
    summary = {
        "views": recon.num_views,
        "points": points,
        "mode": "fast" if args.fast else "default",
        "cameras": {source: recon.pose_origins().count(source) for source in ("given", "sfm", "network")},
        "intrinsics": {source: recon.intrinsics_origins().count(source) for source in ("given", "exif", "sfm", "network")},
        "network_size": list(recon.meta["network_size"]),
        "depth_size": list(recon.depth_size),
        "device": device,
        "model": model.name,
        "inference_s": round(recon.meta["inference_s"], 3),
        **({"compile_s": round(compile_s, 3)} if compile_s is not None else {}),
        "total_s": round(time.perf_counter() - t0, 3),
        # wall and CPU seconds of the reconstruction's stages and of writing the outputs (the rest of total_s:
        # listing the inputs, loading the model)
        "stage_seconds": {kind: {**stage_seconds.get(kind, {}), "export": getattr(export_clock, kind)["export"]}
                          for kind in ("wall", "cpu")},
        "outputs": [str(p) for p in written],
    }
    for key in ("sfm", "consistency", "stereo", "chunks", "sequence", "dropped"):
        if key in recon.meta:
            summary[key] = recon.meta[key]
    if args.json:
        print(strict_json(summary))  # null for what is unknown (NaN): strict parsers accept it
    elif not args.quiet:
        cams = summary["cameras"]
        how = " + ".join(f"{n} {label} cameras" for label, n in (("given", cams["given"]), ("SfM", cams["sfm"]),
                                                                  ("network", cams["network"])) if n)
        if "chunks" in summary:
            how += f"; {summary['chunks']['count']} chunks of {summary['chunks']['window']} views"
        what = "cameras" if kind == CAMERAS_ONLY else f"{summary['points']:,} points"
        print(
            f"{summary['views']} views -> {what} in {summary['total_s']:.1f} s "
            f"({how}; model {summary['inference_s']:.2f} s on {device}); wrote {', '.join(summary['outputs'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
