"""``mum-eval``: the paper's evaluation protocols for a reconstruction model.

* pose: AUC@30 over all pairs of N views (default 10; real scenes sample them with a fixed seed);
* point cloud: Umeyama Sim(3) + point-to-point ICP, accuracy / completeness (mean, median), normal
  consistency (scenes with dense ground-truth depth: the synthetic test set);
* depth: AbsRel and δ<1.25 after per-image median scaling.

Examples::

    mum-eval --model mum-tiny --weights runs/distill_tiny/checkpoints/step_00000300/model.safetensors \\
             --synthetic 20 --size 64 64 --json eval.json
    mum-eval --model runs/.../model.safetensors --scene demo/tum_freiburg --size 224 288
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from heads.registry import DEFAULT_MODEL, PRESETS
from mum.errors import OneLineArgumentParser, UserError


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="mum-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"preset name or checkpoint path (default: {DEFAULT_MODEL})")
    p.add_argument("--weights", help="weights for a preset name")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="evaluate on N held-out synthetic scenes")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="synthetic split: test (report figures) or val (choose checkpoints without touching test)")
    p.add_argument("--scene", action="append", default=[], help="COLMAP / transforms.json scene (repeatable)")
    p.add_argument("--views", type=int, default=10, help="views per scene (N of the pose protocol)")
    p.add_argument("--seed", type=int, default=0, help="seed of the view sampling")
    p.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"), help="network input size")
    p.add_argument("--no-points", action="store_true", help="skip the point-cloud protocol (ICP)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--json", help="write the results here (checked before evaluating)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _predict(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    pred = model.predict(images[None])
    return {"extrinsics": pred.extrinsics[0].cpu(), "depth": pred.depth[0, ..., 0].cpu(),
            "world_points": pred.world_points[0].cpu(), "conf": pred.world_points_conf[0].cpu()}


def evaluate_sample(model: Any, sample: dict[str, torch.Tensor], points: bool) -> dict[str, float]:
    """Metrics of one scene: ``sample`` has ``images`` ``[S,3,H,W]``, ``extrinsics`` ``[S,3,4]`` and optionally
    ``depth``/``valid`` ``[S,H,W]`` and ``intrinsics`` (dense GT enables the depth and point protocols)."""
    from mum.geometry import depth_to_world_points
    from heads.metrics import depth_metrics, pointcloud_metrics, pose_auc30

    out = _predict(model, sample["images"])
    res = {"views": float(sample["images"].shape[0]), **pose_auc30(out["extrinsics"], sample["extrinsics"])}
    if "depth" in sample and bool(sample["valid"].any()):
        res.update(depth_metrics(out["depth"], sample["depth"], sample["valid"]))
        if points:
            gt = depth_to_world_points(sample["depth"].double(), sample["extrinsics"].double(),
                                       sample["intrinsics"].double())
            v = sample["valid"].bool()
            res.update(pointcloud_metrics(out["world_points"][v].double().numpy(), gt[v].numpy()))
    return res


def synthetic_samples(n: int, views: int, size: tuple[int, int], split: str = "test"):
    """The held-out synthetic scenes ``0 … n-1`` of ``split`` (the engine's test or validation seed range)."""
    from mum.training.config import DataConfig
    from mum.training.data import SampleKey
    from mum.training.scene_sources import SyntheticSource

    src = SyntheticSource(DataConfig(image_size=tuple(size)), split, 0)
    prefix = "synthetic" if split == "test" else f"synthetic-{split}"
    for i in range(n):
        yield f"{prefix}/{i:04d}", src(SampleKey(i, views))


def real_sample(path: str, views: int, seed: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """``views`` views (fixed seed) of a posed scene on disk, prepared for the network by the users' own
    preprocessing (:func:`mum.io.preprocess`: centre crop to the aspect of ``size``, resize to ``size``)."""
    from heads.metrics import sample_views
    from mum.data.readers import read_scene
    from mum.io import preprocess

    scene = read_scene(path)
    if not scene.has_cameras:
        raise UserError(f"{path}: no reference cameras (need a COLMAP model or transforms.json)")
    idx = sample_views(scene.num_views, views, seed)
    H, W = size
    images, transforms = preprocess([scene.image(i) for i in idx], size=(W, H))
    Ks = [tf.intrinsics_to_network(scene.intrinsics[i]) for tf, i in zip(transforms, idx)]
    return {"images": images, "extrinsics": torch.from_numpy(scene.extrinsics[idx]).float(),
            "intrinsics": torch.from_numpy(np.stack(Ks)).float()}


def summarize(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows.values() for k in r})
    return {k: float(np.nanmean([r[k] for r in rows.values() if k in r])) for k in keys}


def print_table(groups: dict[str, dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    cols = ["auc30", "rra", "rta", "abs_rel", "delta_1.25", "acc_mean", "acc_median", "comp_mean", "comp_median", "nc_mean"]
    t = Table(title="mum-eval")
    t.add_column("set")
    for c in cols:
        t.add_column(c, justify="right")
    for name, r in groups.items():
        t.add_row(name, *[f"{r[c]:.4g}" if c in r else "–" for c in cols])
    Console(width=200).print(t)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from heads.registry import load_model

    from app.engine.runtime import choose_device

    if args.synthetic < 0 or (not args.synthetic and not args.scene):
        raise UserError("nothing to evaluate: give --synthetic N (N ≥ 1) and/or --scene PATH")
    if args.views < 2:
        raise UserError("--views must be at least 2 (the pose protocol scores pairs of views)")
    if min(args.size) < 16 or any(s % 16 for s in args.size):
        raise UserError(f"--size {args.size[0]} {args.size[1]}: height and width must be positive multiples of 16")
    device = choose_device(args.device)
    try:
        model = load_model(args.model, weights=args.weights, device=device)
    except ValueError as exc:  # an unknown name, or --weights with a checkpoint path
        raise UserError(f"--model/--weights: {exc}") from None
    if args.model in PRESETS and args.weights is None:  # said even with --quiet: the figures would mean nothing
        print(f"note: {args.model} has no bundled weights and no --weights was given: random weights, scored as "
              f"the untrained baseline (the trained default is {DEFAULT_MODEL})", file=sys.stderr)
    per_scene: dict[str, dict[str, float]] = {}
    groups: dict[str, dict[str, float]] = {}
    from tqdm import tqdm

    bar = tqdm(total=args.synthetic + len(args.scene), desc="mum-eval", unit="scene", disable=args.quiet)
    if args.synthetic:
        rows = {}
        for name, s in synthetic_samples(args.synthetic, args.views, tuple(args.size), args.split):
            rows[name] = evaluate_sample(model, s, not args.no_points)
            bar.update()
        per_scene.update(rows)
        label = "synthetic" if args.split == "test" else f"synthetic {args.split}"
        groups[f"{label} ({args.synthetic})"] = summarize(rows)
    for path in args.scene:
        per_scene[path] = evaluate_sample(model, real_sample(path, args.views, args.seed, tuple(args.size)), False)
        groups[Path(path).name] = per_scene[path]
        bar.update()
    bar.close()
    print_table(groups)
    return {"model": args.model, "weights": args.weights, "split": args.split, "views": args.views, "seed": args.seed,
            "size": list(args.size), "summary": groups, "scenes": per_scene}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mum.files import atomic_path, check_output_path

    args = build_parser().parse_args(argv)
    try:
        out = check_output_path(args.json, args.overwrite) if args.json else None  # before a long evaluation
        if out is not None and out.is_dir():
            raise UserError(f"{out}: is a folder; --json needs a file name")
        result = run(args)
    except UserError as exc:
        print(f"mum-eval: error: {exc}", file=sys.stderr)
        return 2
    if out is not None:
        try:
            with atomic_path(out, overwrite=args.overwrite) as tmp:  # nor a file that appeared meanwhile
                tmp.write_text(json.dumps(result, indent=2))
        except UserError as exc:
            print(f"mum-eval: error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
