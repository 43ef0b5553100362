"""``mum-make-testset``: write synthetic scenes to disk in a readable format, so that anyone can evaluate on
exactly the same scenes (seeds from the test range by default).

Example::

    mum-make-testset testset/ --scenes 20 --views 8 --width 512 --height 384 --format colmap

writes ``testset/scene_SEED/`` per scene (``images/``, ``depth/``, ``masks/`` and cameras in the chosen format)
and ``testset/manifest.json`` (seeds, kinds, camera paths, format, command line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mum.data.readers import FORMATS, WRITERS
from mum.data.readers.common import write_depth_npy, write_mask_png
from mum.data.synthetic import PATHS, SPLITS, SyntheticConfig, generate_scene
from mum.data.worlds import KINDS
from mum.errors import OneLineArgumentParser, UserError
from mum.files import atomic_dir, atomic_path, check_output_path


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="mum-make-testset", description=__doc__.split("\n\n")[0])
    p.add_argument("output", type=Path, help="output folder (must be empty or absent unless --overwrite)")
    p.add_argument("--format", choices=FORMATS, default="folder", help="scene format (default: folder)")
    p.add_argument("--scenes", type=int, default=10, help="number of scenes (default 10)")
    p.add_argument("--views", type=int, default=8, help="views per scene (default 8)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--split", choices=list(SPLITS), default="test", help="seed range (default: test)")
    p.add_argument("--start", type=int, default=0, help="first index within the split's seed range")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated scene kinds ({','.join(KINDS)})")
    p.add_argument("--paths", default="orbit,walk,random", help="comma-separated camera paths")
    p.add_argument("--fov", type=float, nargs=2, default=(40.0, 80.0), metavar=("MIN", "MAX"), help="horizontal FoV range, degrees")
    p.add_argument("--overlap", type=float, nargs=2, default=(0.5, 0.9), metavar=("MIN", "MAX"))
    p.add_argument("--photos", nargs="*", default=None, help="folders of photos to cut textures from (default: demo/*/images)")
    p.add_argument("--contact-sheet", type=Path, default=None, help="also write a PNG contact sheet of the scenes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    return p


def _config(args: argparse.Namespace) -> SyntheticConfig:
    """The engine configuration the arguments ask for; every argument is checked here, before anything is
    written."""
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise UserError(f"--kinds must name some of {', '.join(KINDS)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    known_paths = {p for ps in PATHS.values() for p in ps}
    cam_paths = tuple(p for p in args.paths.split(",") if p)
    if not cam_paths or any(p not in known_paths for p in cam_paths):
        raise UserError(f"--paths must name some of {', '.join(sorted(known_paths))}")
    if args.scenes < 1 or args.views < 1 or args.width < 8 or args.height < 8:
        raise UserError("--scenes and --views must be ≥ 1, --width and --height ≥ 8")
    if not 0 < args.fov[0] <= args.fov[1] < 180:
        raise UserError("--fov MIN MAX must satisfy 0 < MIN ≤ MAX < 180 (degrees)")
    if not 0 <= args.overlap[0] <= args.overlap[1] <= 1:
        raise UserError("--overlap MIN MAX must satisfy 0 ≤ MIN ≤ MAX ≤ 1")
    seeds = SPLITS[args.split]
    if args.start < 0 or args.start + args.scenes > len(seeds):
        raise UserError(f"--start/--scenes exceed the {args.split} seed range ({len(seeds)} seeds)")
    return SyntheticConfig(kinds=kinds, camera_paths=cam_paths, fov_deg=tuple(args.fov), overlap=tuple(args.overlap),
                           photo_dirs=tuple(args.photos) if args.photos is not None else None)


def _check_output(args: argparse.Namespace) -> Path:
    """The output folder: absent, empty, or (with ``--overwrite``) replaced once the new set is complete."""
    out = check_output_path(args.output, overwrite=True)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"{out}: exists and is not empty (use --overwrite to replace it)")
    if args.contact_sheet is not None:
        check_output_path(args.contact_sheet, args.overwrite)
        if args.contact_sheet.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise UserError(f"{args.contact_sheet}: the contact sheet must be a .png or .jpg file")
    return out


def run(args: argparse.Namespace) -> Path:
    config = _config(args)
    out = _check_output(args)
    seeds = SPLITS[args.split]
    entries, sheet_scenes = [], []
    t0 = time.time()
    with atomic_dir(out, overwrite=True) as tmp:  # the old set stays until the new one is complete
        for k in range(args.scenes):
            seed = seeds[args.start + k]
            scene = generate_scene(seed, args.views, args.width, args.height, config)
            folder = tmp / f"scene_{seed}"
            if args.format == "video":
                folder.mkdir()
                WRITERS["video"](scene, folder / "video.avi")
                for i, name in enumerate(scene.names):  # a video holds no depth: keep it beside it
                    write_depth_npy(folder / "depth", f"frame_{i:06d}", scene.depths[i])
                    write_mask_png(folder / "masks", f"frame_{i:06d}", scene.masks[i])
            else:
                WRITERS[args.format](scene, folder)
                if args.format == "colmap":  # COLMAP has no depth: keep it beside the model
                    for i, name in enumerate(scene.names):
                        write_depth_npy(folder / "depth", Path(name).stem, scene.depths[i])
                        write_mask_png(folder / "masks", Path(name).stem, scene.masks[i])
            entries.append({"seed": seed, "folder": folder.name, **{k2: scene.meta[k2] for k2 in ("kind", "path", "fov_deg", "overlap")}})
            if args.contact_sheet is not None and len(sheet_scenes) < 8:
                sheet_scenes.append(scene)
            print(f"[{k + 1}/{args.scenes}] scene {seed}: {scene.meta['kind']} / {scene.meta['path']} → {out / folder.name}", flush=True)
        manifest = {"format": args.format, "split": args.split, "views": args.views, "width": args.width, "height": args.height,
                    "command": "mum-make-testset " + " ".join(sys.argv[1:]), "scenes": entries}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if args.contact_sheet is not None:
        import cv2

        from mum.data.preview import contact_sheet

        with atomic_path(args.contact_sheet) as sheet:
            if not cv2.imwrite(str(sheet), contact_sheet(sheet_scenes)[..., ::-1]):
                raise OSError(f"could not write {args.contact_sheet}")
    print(f"wrote {args.scenes} scenes to {out} in {time.time() - t0:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions: the atomic writers have removed their temporaries
        print(f"error: cannot write the test set ({exc.strerror or exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
