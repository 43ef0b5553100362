"""``mum-features``: MuM encoder features for a set of images, saved as ``.npz`` with a PCA picture.

Example: ``mum-features demo/tum_freiburg/images -o features.npz --weights MuM_ViTLarge.pth --preset vitl16``
"""

from __future__ import annotations

import time

import numpy as np
import torch

from app.engine.runtime import choose_device, friendly_errors
from mum.io import list_image_paths, load_images, preprocess
from mum.config import ENCODER_PRESETS
from mum.encoder import build_encoder
from mum.errors import OneLineArgumentParser, UserError
from mum.files import atomic_path, check_output_path
from mum.weights import load_encoder


def pca_image(tokens: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Patch tokens ``[S, P, C]`` → ``uint8`` picture ``[h, S·w, 3]`` of their first 3 principal components."""
    S, P, C = tokens.shape
    flat = tokens.reshape(-1, C) - tokens.reshape(-1, C).mean(0)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    proj = flat @ vt[:3].T
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    proj = np.clip((proj - lo) / np.maximum(hi - lo, 1e-8), 0, 1)
    h, w = grid_hw
    img = proj.reshape(S, h, w, 3).transpose(1, 0, 2, 3).reshape(h, S * w, 3)
    return (img * 255).astype(np.uint8)


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="mum-features", description="Extract MuM encoder features from images.")
    parser.add_argument("inputs", nargs="+", help="image files, folders or globs")
    parser.add_argument("-o", "--output", required=True, help="output .npz (a .png PCA picture is written beside it)")
    parser.add_argument("--preset", default="vitl16", choices=sorted(ENCODER_PRESETS), help="encoder size")
    parser.add_argument("--weights", help="MuM_ViTLarge.pth or project safetensors (default: random init, for testing)")
    parser.add_argument("--size", type=int, default=224, help="longer image side in pixels (multiple of 16)")
    parser.add_argument("--layers", type=int, nargs="*", default=[], help="also save these blocks' patch tokens")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    out = check_output_path(args.output, args.overwrite, inputs=args.inputs)
    if args.size < 16:
        raise UserError("--size must be at least 16 (one patch)")
    if out.suffix.lower() != ".npz":
        raise UserError(f"{out}: the output must be a .npz file")
    png = check_output_path(out.with_suffix(".png"), args.overwrite)
    device = choose_device(args.device)
    paths = list_image_paths(args.inputs)
    images, _ = preprocess(load_images(paths), long_side=args.size, patch_size=16)
    if args.weights:
        encoder = load_encoder(args.weights, preset=args.preset)
    else:
        print(f"note: no --weights given, using a randomly initialised {args.preset} encoder")
        torch.manual_seed(0)
        encoder = build_encoder(args.preset)
    encoder = encoder.to(device).eval()
    t0 = time.perf_counter()
    try:
        feats = encoder.extract(images.to(device), layers=args.layers, chunk_size=8)
    except ValueError as exc:  # --layers out of range
        raise UserError(f"--layers: {exc}") from None
    elapsed = time.perf_counter() - t0
    arrays = {
        "patch_tokens": feats.patch_tokens.float().cpu().numpy(),
        "cls_token": feats.cls_token.float().cpu().numpy(),
        "grid_hw": np.array(feats.grid_hw),
        "names": np.array([p.name for p in paths]),
    }
    for layer, t in zip(args.layers, feats.intermediate):
        arrays[f"layer_{layer}"] = t.float().cpu().numpy()
    import cv2

    with atomic_path(out, overwrite=args.overwrite) as tmp, open(tmp, "wb") as fh:  # nor one that appeared meanwhile
        np.savez_compressed(fh, **arrays)
    with atomic_path(png, overwrite=args.overwrite) as tmp:
        cv2.imwrite(str(tmp), pca_image(arrays["patch_tokens"], feats.grid_hw)[..., ::-1])
    S, P, C = arrays["patch_tokens"].shape
    print(f"{S} images {tuple(images.shape[-2:])} px -> {P} patches x {C} dims in {elapsed:.2f} s on {device}")
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
