"""Package a distillation run's final weights as the bundled default model.

Usage: ``python scripts/package_bundled.py RUN_DIR OUT.safetensors [--name mum-tiny] [--image-size 128] [--step N]``.
Takes the newest complete checkpoint of RUN_DIR (or that of step N), records the name and the resolution it was trained at in the
config, and writes project safetensors (loadable with ``heads.load_model(path)``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import heads  # noqa: E402


def run_checkpoint(run_dir: Path, step: int | None = None) -> Path:
    """The newest complete checkpoint of ``run_dir``, or the one of ``step``."""
    done = sorted(p.parent for p in (run_dir / "checkpoints").glob("step_*/COMPLETE"))
    if step is not None:
        done = [d for d in done if d.name == f"step_{step:08d}"]
    if not done:
        raise SystemExit(f"{run_dir}: no complete checkpoint" + (f" of step {step}" if step is not None else ""))
    return done[-1] / "model.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="mum-tiny")
    parser.add_argument("--image-size", type=int, default=128, help="default long side (the training resolution)")
    parser.add_argument("--step", type=int, help="package this step's checkpoint (default: the newest)")
    args = parser.parse_args()
    ckpt = run_checkpoint(args.run_dir, args.step)
    model = heads.load_model(ckpt, device="cpu")
    model.cfg = dataclasses.replace(model.cfg, name=args.name, image_size=args.image_size)
    model.name = args.name
    heads.save_model(model, args.out)
    print(f"{ckpt} -> {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
