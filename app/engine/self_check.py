"""``--self-check``: a tiny reconstruction through the configured model, on the chosen device, with the attention
backend this process verifies: what a server must be able to do before it answers its first request.

Three seeded synthetic views of 4 × 6 patches go through :meth:`heads.Reconstructor.predict` (the same code as a
real request: bf16 trunk on CUDA, float32 heads); every output must have its shape and be finite, depth and
confidences positive. One line is printed: ``self-check ok: ...`` with the model, device, time, the attention
backends used and the torch / CUDA / xformers versions; on failure one ``error: self-check failed: ...`` line
and a non-zero exit (2 for a configuration error such as ``MUM_ATTENTION`` naming a backend that cannot run,
1 otherwise). The Docker image's ``HEALTHCHECK`` runs it (``mum-web --self-check``).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

import torch

from mum.errors import OneLineArgumentParser, UserError, one_line

FRAMES = 3
PATCHES = (4, 6)  # the views' size in patches (rows, columns)


def versions() -> str:
    """``torch 2.10.0+cu128 (CUDA 12.8), xformers 0.0.35``: the installed stack (xformers only if it imports)."""
    from mum.layers.attention import xformers_available

    text = f"torch {torch.__version__}" + (f" (CUDA {torch.version.cuda})" if torch.version.cuda else "")
    if xformers_available():
        text += f", xformers {getattr(sys.modules.get('xformers'), '__version__', 'unknown')}"
    return text


def self_check(model: Any, frames: int = FRAMES) -> str:
    """Run ``frames`` synthetic views through ``model.predict`` and check the outputs; returns the ``self-check
    ok`` line, raises :class:`UserError` when an output is missing, misshapen or not finite."""
    from mum.layers.attention import chosen_backends

    p = model.patch_size
    H, W = PATCHES[0] * p, PATCHES[1] * p
    g = torch.Generator().manual_seed(0)
    images = torch.rand(frames, 3, H, W, generator=g)
    device = next(model.parameters()).device
    start = time.perf_counter()
    pred = model.predict(images, chunk_size=2, output_device="cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    expected = {"depth": (1, frames, H, W, 1), "depth_conf": (1, frames, H, W), "world_points": (1, frames, H, W, 3),
                "extrinsics": (1, frames, 3, 4), "intrinsics": (1, frames, 3, 3)}
    for name, shape in expected.items():
        value = getattr(pred, name)
        if tuple(value.shape) != shape:
            raise UserError(f"self-check failed: {name} has shape {tuple(value.shape)}, expected {shape}")
        if not torch.isfinite(value).all():
            raise UserError(f"self-check failed: {name} is not finite on {device}")
    if not (pred.depth > 0).all() or not (pred.depth_conf > 0).all():
        raise UserError(f"self-check failed: depth or confidence not positive on {device}")
    where = f"{device.type} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type
    used = sorted(set(chosen_backends().values()))
    return (f"self-check ok: {model.name} on {where}, {frames} views of {W}x{H} px in {seconds:.2f} s; "
            f"attention {', '.join(used) or 'none'}; {versions()}")


def run(model_name: Optional[str], weights: Optional[str], device: str, compile_model: bool = False) -> int:
    """Load the model as the server would and :func:`self_check` it; print one line; return the exit status."""
    try:
        import heads

        try:
            model = heads.load_model(model_name or heads.DEFAULT_MODEL, weights=weights, device=device)
        except ValueError as exc:
            raise UserError(f"--model/--weights: {exc}") from None
        if compile_model:
            model.compile_for_inference()
        line = self_check(model)
    except UserError as exc:
        message = str(exc)
        print(f"error: {one_line(message if message.startswith('self-check failed') else 'self-check failed: ' + message)}",
              file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a health check reports any failure in one line
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: self-check failed: {type(exc).__name__}: {one_line(first)[:400]}", file=sys.stderr)
        return 1
    print(line, flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m app.engine.self_check [--model NAME] [--weights FILE] [--device auto]``: the same check as ``mum-web
    --self-check`` without the web app's dependencies (gradio)."""
    import argparse
    import os

    from app.engine.runtime import choose_device

    env = os.environ.get
    p = OneLineArgumentParser(prog="python -m app.engine.self_check", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=env("MUM_MODEL") or None, help="model preset or checkpoint path [MUM_MODEL]")
    p.add_argument("--weights", default=env("MUM_WEIGHTS") or None, help="weights file for --model [MUM_WEIGHTS]")
    p.add_argument("--device", default=env("MUM_DEVICE", "auto"), help="auto, cpu, cuda, cuda:N [MUM_DEVICE]")
    p.add_argument("--compile", action="store_true", help="torch.compile the model's blocks first")
    args = p.parse_args(argv)
    try:
        device = choose_device(args.device)
    except UserError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    return run(args.model, args.weights, device, compile_model=args.compile)


if __name__ == "__main__":
    sys.exit(main())
