"""From user input to a :class:`~app.reconstruction.Reconstruction`: load, preprocess, predict, convert.

Shared by the command-line tool and the web app (one implementation for both).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from app.cli_common import is_out_of_memory
from app.io import ViewTransform, preprocess
from app.reconstruction import Reconstruction
from mum.errors import UserError


def prediction_to_reconstruction(pred: Any, names: Sequence[str], transforms: Sequence[ViewTransform]) -> Reconstruction:
    """Convert one scene's prediction (``heads.Prediction`` with batch 1) to original-image conventions."""
    def arr(t: torch.Tensor) -> np.ndarray:
        t = t.detach().float().cpu()
        return (t[0] if t.ndim and t.shape[0] == 1 else t).numpy()

    extr = arr(pred.extrinsics).astype(np.float64)  # [S, 3, 4]
    S = extr.shape[0]
    cam_from_world = np.tile(np.eye(4), (S, 1, 1))
    cam_from_world[:, :3, :] = extr
    K_net = arr(pred.intrinsics).astype(np.float64)
    K_orig = np.stack([tf.intrinsics_to_original(K) for tf, K in zip(transforms, K_net)])
    images = arr(pred.images)  # [S, 3, H, W] or [S, H, W, 3]
    if images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    return Reconstruction(
        names=list(names),
        image_sizes=[tf.original_size for tf in transforms],
        cam_from_world=cam_from_world,
        intrinsics=K_orig,
        depth=arr(pred.depth)[..., 0],
        depth_conf=arr(pred.depth_conf),
        world_points=arr(pred.world_points),
        world_points_conf=arr(pred.world_points_conf),
        colors=np.clip(images * 255 + 0.5, 0, 255).astype(np.uint8),
        network_intrinsics=K_net,
    )


def predict_with_oom_fallback(model: Any, images: torch.Tensor, chunk_size: Optional[int], say: Callable[[str], None]):
    """``model.predict`` that, on out-of-memory, frees the cache and retries with half the frame chunk down to 1
    (memory of the encoder and DPT heads is linear in the chunk), telling the user each time; gives a
    :class:`UserError` when even one frame per chunk does not fit (global attention over all frames remains)."""
    from heads.model import DEFAULT_CHUNK_SIZE

    chunk = min(chunk_size or DEFAULT_CHUNK_SIZE, images.shape[-4])
    while True:
        try:
            return model.predict(images, chunk_size=chunk)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            if images.is_cuda:
                torch.cuda.empty_cache()
            if chunk <= 1:
                raise UserError(
                    f"out of memory with {images.shape[-4]} views at {images.shape[-1]}x{images.shape[-2]} px even "
                    "one frame per chunk: use fewer views (--max-frames) or a smaller --size"
                ) from None
            chunk = max(1, chunk // 2)
            say(f"out of memory: retrying with {chunk} frame(s) per chunk")


def reconstruct_arrays(
    model: Any,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    long_side: Optional[int] = None,
    device: str = "cpu",
    chunk_size: Optional[int] = None,
    on_stage: Optional[Callable[[str], None]] = None,
) -> Reconstruction:
    """Run ``model`` (a ``heads.Reconstructor``) on ``uint8`` RGB views; returns the scene in user conventions."""
    say = on_stage or (lambda _msg: None)
    size = long_side or model.cfg.image_size
    images, transforms = preprocess(arrays, long_side=size, patch_size=model.patch_size)
    H, W = images.shape[-2:]
    say(f"preprocessed {len(arrays)} views to {W} × {H} px" + (f" (--size {size} → a multiple of {model.patch_size})"
                                                               if max(H, W) != size else ""))
    say(f"running the model on {device}")
    t0 = time.perf_counter()
    pred = predict_with_oom_fallback(model, images.to(device), chunk_size, say)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    recon = prediction_to_reconstruction(pred, names, transforms)
    recon.meta.update(inference_s=elapsed, device=device, network_size=tuple(images.shape[-1:-3:-1]))
    return recon
