"""README pictures: input views above the reconstructed point cloud with cameras, per demo scene — the
default path (SfM cameras, multi-view stereo depth) on the left, ``--fast`` (the network alone) on the
right, each with its pose AUC@30 against the reference cameras.

Usage: ``python scripts/readme_figures.py [--model mum-default] [--scenes tum_freiburg buddha]``;
writes ``docs/recon_<scene>.png``. With ``--dense``: the default path's cloud with ``--dense fitted`` beside
the stereo cloud (the default), ``docs/dense_<scene>.png``.
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
import torch  # noqa: E402

from mum.io import load_views  # noqa: E402
from app.engine.pipeline import reconstruct_arrays  # noqa: E402
from app.engine.options import CameraOptions, PipelineOptions  # noqa: E402
from app.engine.reconstruction import default_conf_percentile  # noqa: E402
from app.exports.snapshot import input_strip, render_reconstruction  # noqa: E402
from heads.metrics import pose_auc, relative_pose_errors  # noqa: E402
from mum.data.readers import read_scene  # noqa: E402

PANEL = (640, 480)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(image, text, (12, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
    return image


def figure(scene: str, model) -> Path:
    ref = read_scene(ROOT / "demo" / scene)
    names, arrays = load_views([ROOT / "demo" / scene / "images" / n for n in ref.names])
    panels = []
    for fast in (False, True):
        recon = reconstruct_arrays(model, names, arrays,
                                   options=PipelineOptions(fast=fast, cameras=CameraOptions(native_log="/dev/null")))
        cloud = recon.point_cloud(conf_percentile=default_conf_percentile(fast), max_points=400_000)
        rra, rta = relative_pose_errors(torch.from_numpy(recon.cam_from_world[:, :3]), torch.from_numpy(ref.extrinsics))
        auc = 100 * float(pose_auc(rra, rta, 30))
        disagreement = 100 * recon.meta["consistency"]["cloud_median_depth_disagreement"]
        title = (f"{'--fast' if fast else 'default'}: AUC@30 {auc:.0f}, views disagree {disagreement:.1f} %")
        panels.append(_label(render_reconstruction(recon, cloud, *PANEL), title))
        print(f"{scene} {'fast' if fast else 'default'}: {len(names)} views, {len(cloud)} points, AUC@30 {auc:.1f}")
    render = np.concatenate(panels, axis=1)
    strip = input_strip(recon, 120)
    strip = cv2.resize(strip, (render.shape[1], round(strip.shape[0] * render.shape[1] / strip.shape[1])),
                       interpolation=cv2.INTER_AREA)
    out = ROOT / "docs" / f"recon_{scene}.png"
    cv2.imwrite(str(out), np.concatenate([strip, render], axis=0)[..., ::-1])
    print(f"-> {out}")
    return out


def dense_figure(scene: str, model) -> Path:
    """``docs/dense_<scene>.png``: the default path's cloud with ``--dense fitted`` (left, the depth before
    stereo) and with stereo (right, the default), from the same viewpoint, over a close-up of both."""
    from app.engine.dense_options import DenseOptions
    from app.exports.snapshot import virtual_camera

    ref = read_scene(ROOT / "demo" / scene)
    names, arrays = load_views([ROOT / "demo" / scene / "images" / n for n in ref.names])
    recons = {mode: reconstruct_arrays(model, names, arrays,
                                       options=PipelineOptions(dense=DenseOptions(mode=mode),
                                                               cameras=CameraOptions(native_log="/dev/null")))
              for mode in ("fitted", "stereo")}
    clouds = {mode: r.point_cloud(max_points=1_500_000) for mode, r in recons.items()}
    overview = virtual_camera(recons["stereo"], clouds["stereo"], *PANEL)
    T0 = recons["stereo"].cam_from_world[0]  # a close-up: the first camera, moved back a little and turned
    centre = np.median(clouds["stereo"].xyz[clouds["stereo"].view == 0], axis=0)
    close = _orbit(T0, centre, 20.0, 0.3)
    K = np.array([[1.2 * PANEL[0], 0, PANEL[0] / 2], [0, 1.2 * PANEL[0], PANEL[1] / 2], [0, 0, 1.0]])
    rows = []
    for camera in (overview, (close, K)):
        panels = []
        for mode in ("fitted", "stereo"):
            r, cloud = recons[mode], clouds[mode]
            label = (f"--dense fitted: {len(cloud):,} points" if mode == "fitted"
                     else f"stereo (default): {len(cloud):,} points")
            panels.append(_label(render_reconstruction(r, cloud, *PANEL, point_px=1, camera=camera), label))
        rows.append(np.concatenate(panels, axis=1))
    out = ROOT / "docs" / f"dense_{scene}.png"
    write_small_png(out, np.concatenate(rows, axis=0))
    print(f"-> {out}")
    return out


def write_small_png(path: Path, rgb: np.ndarray, scale: float = 0.75, colours: int = 256) -> None:
    """``rgb`` ``[H, W, 3]`` uint8 as a PNG of a few hundred KB: resized by ``scale`` (Lanczos) and reduced to a
    palette of ``colours`` (median cut, no dithering; a point-cloud render of 1-px points compresses badly)."""
    from PIL import Image

    image = Image.fromarray(rgb)
    image = image.resize((round(scale * image.width), round(scale * image.height)), Image.LANCZOS)
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def _orbit(cam_from_world: np.ndarray, centre: np.ndarray, degrees: float, back: float) -> np.ndarray:
    """``cam_from_world`` carried around ``centre`` by ``degrees`` about its own vertical axis, and moved back by
    ``back`` × its distance to ``centre`` (it still looks at the same point)."""
    R = cam_from_world[:3, :3]
    C = -R.T @ cam_from_world[:3, 3]
    a = np.radians(degrees)
    Q = R.T @ np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) @ R  # in the world
    out = np.eye(4)
    out[:3, :3] = R @ Q.T
    out[:3, 3] = -out[:3, :3] @ (Q @ (C - centre) * (1 + back) + centre)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=heads.DEFAULT_MODEL)
    parser.add_argument("--scenes", nargs="+", default=["tum_freiburg", "buddha"])
    parser.add_argument("--dense", action="store_true", help="the dense figures (fitted vs stereo) instead")
    args = parser.parse_args()
    model = heads.load_model(args.model, device="cpu")
    for scene in args.scenes:
        (dense_figure if args.dense else figure)(scene, model)


if __name__ == "__main__":
    main()
