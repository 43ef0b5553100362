"""README pictures: input views above the reconstructed point cloud with cameras, per demo scene.

Usage: ``python scripts/readme_figures.py [--model mum-default] [--views 8] [--scenes tum_freiburg synthetic_room]``;
writes ``docs/recon_<scene>.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (CPU threading policy first)
import cv2  # noqa: E402
import numpy as np  # noqa: E402

import heads  # noqa: E402
from app.io import load_views  # noqa: E402
from app.pipeline import reconstruct_arrays  # noqa: E402
from app.snapshot import input_strip, render_reconstruction  # noqa: E402


def figure(scene: str, model, views: int, conf: float) -> Path:
    names, arrays = load_views(ROOT / "demo" / scene / "images", max_frames=views)
    recon = reconstruct_arrays(model, names, arrays, device="cpu")
    cloud = recon.point_cloud(conf_percentile=conf)
    render = render_reconstruction(recon, cloud, 900, 600)
    strip = input_strip(recon, 120)
    strip = cv2.resize(strip, (900, round(strip.shape[0] * 900 / strip.shape[1])), interpolation=cv2.INTER_AREA)
    out = ROOT / "docs" / f"recon_{scene}.png"
    cv2.imwrite(str(out), np.concatenate([strip, render], axis=0)[..., ::-1])
    print(f"{scene}: {len(names)} views, {len(cloud)} points -> {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=heads.DEFAULT_MODEL)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--conf-percentile", type=float, default=50.0)
    parser.add_argument("--scenes", nargs="+", default=["tum_freiburg", "synthetic_room"])
    args = parser.parse_args()
    model = heads.load_model(args.model, device="cpu")
    for scene in args.scenes:
        figure(scene, model, args.views, args.conf_percentile)


if __name__ == "__main__":
    main()
